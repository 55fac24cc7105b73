// A template filled from a claimed row's source row into a stored message: its addresses, subject and bodies each checked as rendered.
import { isEmailAddress } from '../config/email-address.ts'
import { splitRenderedAddress } from '../config/sender-address.ts'
import type { TemplateRow } from '../db/schema.ts'
import { foldControlCharacters } from './header-text.ts'
import type { RenderableRow } from './render.ts'
import { RenderError } from './render-error.ts'
import { renderedAddress } from './rendered-address.ts'
import type { MailAddress } from './sender.ts'
import { isBodiless, isSubjectTooLong, type StoredMessage } from './stored-message.ts'
import { fill } from './template-fill.ts'

// Nothing, or a name before an empty "<>": a NULL or empty column left no address (none, not a bad one).
export const NO_ADDRESS = /^(?:[^<>]*<\s*>)?\s*$/s

export function renderTemplate(lease: RenderableRow, t: TemplateRow | undefined): StoredMessage {
  if (!t) {
    throw new RenderError('template_not_found', `template "${lease.template}" no longer exists`)
  }
  // Each entry renders one address or fails, so the count is known before rendering: at most 500,
  // as enqueue and Graph take. None at all the table refuses (templates_recipient_check, sql/0001).
  const recipients = t.to_addresses.length + t.cc_addresses.length + t.bcc_addresses.length
  if (recipients > 500)
    throw new RenderError(
      'template_error',
      `to_addresses, cc_addresses and bcc_addresses hold ${recipients} recipients; a message takes at most 500`,
    )
  const view = lease.sourceRow ?? {}
  const text = (field: string, tpl: string) => fill(field, tpl, view, false)
  // An address rendered empty is left out (a sender: MAIL_FROM then); anything else must be valid.
  const address = (field: string, tpl: string): MailAddress[] => {
    const raw = text(field, tpl)
    return NO_ADDRESS.test(raw) ? [] : [renderedAddress(raw, field)]
  }
  const addresses = (field: string, list: readonly string[]) =>
    list.flatMap((a, i) => address(`${field}[${i}]`, a))
  // A reply-to is where an answer goes, not where the mail goes: one the source row makes invalid
  // (a visitor's mistyped e-mail in the form) is left out, as an empty one is, and the mail still
  // reaches its recipients. One without a placeholder is the template's own mistake, which fails
  // every mail of it (0031 refuses it when written; a template stored before still fails its rows).
  const replyTo = (tpl: string): MailAddress[] => {
    if (!tpl.includes('{{')) return address('reply_to', tpl)
    const raw = text('reply_to', tpl)
    if (NO_ADDRESS.test(raw)) return []
    const parsed = splitRenderedAddress(raw)
    return isEmailAddress(parsed.address) ? [parsed] : []
  }
  const to = addresses('to_addresses', t.to_addresses)
  const cc = addresses('cc_addresses', t.cc_addresses)
  const bcc = addresses('bcc_addresses', t.bcc_addresses)
  const out: StoredMessage = {
    to,
    cc,
    bcc,
    replyTo: t.reply_to ? replyTo(t.reply_to) : [],
    subject: renderedSubject(text('subject', t.subject)),
  }
  if (to.length + cc.length + bcc.length === 0)
    throw new RenderError(
      'template_error',
      'no recipient after rendering: every address of to_addresses, cc_addresses and bcc_addresses is empty',
    )
  const from = t.from_address ? address('from_address', t.from_address)[0] : undefined
  if (from) out.from = from
  if (t.text_body !== null) out.text = text('text_body', t.text_body)
  if (t.html_body !== null) out.html = fill('html_body', t.html_body, view, true)
  return out
}

/**
 * A template's rendered bodies held to a stored message's bar (sendableStoredBodies): one must show
 * something. A NULL or empty column filled into the only body (a form's empty note) mailed the
 * recipient a subject and nothing else; failed instead, naming the template and its fields, so it
 * can be fixed and the row retried (rendered again as the template then stands). A template has no
 * attachment to be the mail.
 */
export function renderedBodies(
  template: string,
  bodies: { text: string | null; html: string | null },
): { text: string | null; html: string | null } {
  if (!isBodiless(bodies)) return bodies
  const fields = [bodies.text !== null && 'text_body', bodies.html !== null && 'html_body'].filter(
    Boolean,
  )
  throw new RenderError(
    'template_error',
    `${fields.join(' and ')} of template "${template}" ${fields.length > 1 ? 'are' : 'is'} empty after rendering (nothing but blanks): a mail without a body is not sent`,
  )
}

/**
 * The rendered subject held to a stored one's bar (sendableSubject, sendableStoredSubject): on one
 * line, not empty, at most 998 characters. A column filled into it may be any length (a customer's
 * message): past 998 it is cut to 997 and an ellipsis rather than failed, so that the row's mail
 * still goes. The blanks a template's layout leaves around it are its own.
 */
function renderedSubject(rendered: string): string {
  const subject = foldControlCharacters(rendered.trim())
  if (subject === '') throw new RenderError('template_error', 'subject is empty after rendering')
  if (isSubjectTooLong(subject)) return `${[...subject].slice(0, 997).join('')}…`
  return subject
}
