// Turns a claimed row into an OutboundMail: a stored message, checked, or a template filled from the source row.
import { isSenderAllowed } from '../config/allowed-senders.ts'
import { isEmailAddress } from '../config/email-address.ts'
import { isGraphUserId, splitRenderedAddress } from '../config/sender-address.ts'
import type { TemplateRow } from '../db/schema.ts'
import type { Lease } from './claim.ts'
import { headerFieldsBytes, MAX_HEADER_BYTES } from './header-size.ts'
import { foldControlCharacters } from './header-text.ts'
import { NOT_SENT, RenderError } from './render-error.ts'
import { renderedAddress } from './rendered-address.ts'
import type { MailAddress, OutboundMail } from './sender.ts'
import {
  isBodiless,
  isSubjectTooLong,
  type StoredMessage,
  sendableAttachments,
  sendableBodies,
  sendableCorrelationId,
  sendableHeaders,
  sendableImportance,
  sendableStoredBodies,
  sendableStoredSubject,
  sendableSubject,
  shownBodies,
} from './stored-message.ts'
import { checkStoredRecipients, sendableAddresses, sendableSender } from './stored-recipients.ts'
import { fill } from './template-fill.ts'

// Nothing, or a name before an empty "<>": a NULL or empty column left no address (none, not a bad one).
export const NO_ADDRESS = /^(?:[^<>]*<\s*>)?\s*$/s

/**
 * What rendering reads of a row: a claimed lease, or a row read for inspection (row-rendering.ts),
 * which this one path renders as its worker would.
 */
export type RenderableRow = Pick<
  Lease,
  'id' | 'tenant' | 'attempt' | 'correlationId' | 'message' | 'template' | 'sourceRow'
>

export function renderLease(
  lease: RenderableRow,
  templates: ReadonlyMap<string, TemplateRow>,
  defaultFrom: string | null,
  /** MAIL_FROM_ALLOWED's keys: a sender the row names must be one; null, any. */
  allowedSenders: ReadonlySet<string> | null = null,
): OutboundMail {
  return renderWith(lease, templates, allowedSenders, () =>
    sendableSender(null, defaultFrom ? parseDefaultFrom(defaultFrom) : null),
  )
}

const UNKNOWN: unique symbol = Symbol('MAIL_FROM unknown here')

/**
 * renderLease where the sender of a row naming none is not known (row-rendering.ts: a process that
 * sends nothing, without a MAIL_FROM a worker could send from): its `from` null, all else as sent.
 */
export function renderMailFromUnknown(
  lease: RenderableRow,
  templates: ReadonlyMap<string, TemplateRow>,
  allowedSenders: ReadonlySet<string> | null,
): Omit<OutboundMail, 'from'> & { from: MailAddress | null } {
  const mail = renderWith<typeof UNKNOWN>(lease, templates, allowedSenders, () => UNKNOWN)
  return { ...mail, from: mail.from === UNKNOWN ? null : mail.from }
}

/** `unnamed()`: the sender of a row naming none (MAIL_FROM), or null: none, the row fails no_sender. */
function renderWith<F>(
  lease: RenderableRow,
  templates: ReadonlyMap<string, TemplateRow>,
  allowedSenders: ReadonlySet<string> | null,
  unnamed: () => F | null,
): Omit<OutboundMail, 'from'> & { from: MailAddress | F } {
  const m = lease.template
    ? renderTemplate(lease, templates.get(lease.template))
    : (lease.message as StoredMessage | null)
  if (!m || typeof m !== 'object') throw new RenderError('invalid_message', 'row has no message')
  // A template's addresses were each checked as it rendered them.
  if (!lease.template) checkStoredRecipients(m)
  const own = m.from == null ? null : sendableSender(m.from, null)
  const from = m.from == null ? unnamed() : own
  if (!from)
    throw new RenderError('no_sender', 'no from address on the row and MAIL_FROM is not set')
  // A row written through SQL (or a template's from_address) was never asked at enqueue; one the
  // API took is asked again, the list may have changed since. MAIL_FROM itself is never refused.
  if (own && !isSenderAllowed(allowedSenders, own.address))
    throw new RenderError(
      'sender_not_allowed',
      `message.from names a mailbox MAIL_FROM_ALLOWED does not list${NOT_SENT}`,
    )
  const subject = sendableSubject(m.subject)
  const bodies = sendableBodies(m)
  const { text, html } = shownBodies(
    lease.template
      ? renderedBodies(lease.template, bodies)
      : sendableStoredBodies(bodies, m.attachments),
  )
  const mail = {
    outboxId: lease.id,
    tenant: lease.tenant,
    attempt: lease.attempt,
    correlationId: sendableCorrelationId(lease.correlationId),
    from,
    to: sendableAddresses(m.to, 'message.to'),
    cc: sendableAddresses(m.cc, 'message.cc'),
    bcc: sendableAddresses(m.bcc, 'message.bcc'),
    replyTo: sendableAddresses(m.replyTo, 'message.replyTo'),
    // A template's was checked as it rendered (renderedSubject).
    subject: lease.template ? subject : sendableStoredSubject(subject),
    text,
    html,
    importance: sendableImportance(m.importance),
    headers: sendableHeaders(m.headers),
    attachments: sendableAttachments(m.attachments),
  }
  checkHeaderSize(mail, own, lease.template ? 'template_error' : 'invalid_message')
  return mail
}

/**
 * The whole header held to Exchange Online's 256 KB as enqueue holds a message (sql/0086): a row
 * stored before, or inserted directly, or a template filled from its row (rendered only at send,
 * a column may fill a display name of any length) fails here rather than at Graph.
 */
function checkHeaderSize(
  mail: Omit<OutboundMail, 'from'>,
  /** The sender the row names: MAIL_FROM, which enqueue never saw, is not held to it. */
  own: MailAddress | null,
  code: 'invalid_message' | 'template_error',
): void {
  const bytes = headerFieldsBytes({ ...mail, from: own })
  if (bytes > MAX_HEADER_BYTES)
    throw new RenderError(
      code,
      `message has a header of at least ${bytes} bytes (its subject, from, to, cc, replyTo and X- headers as lines): Exchange Online takes a message header of at most ${MAX_HEADER_BYTES} bytes (256 KB)`,
    )
}

// MAIL_FROM is the same for every row of a process: parsed once, not once per message.
let defaultFromCache: { raw: string; address: Readonly<MailAddress> } | null = null
/** MAIL_FROM as a sender: `Name <address>`, an address, or a Graph user id. */
export function parseDefaultFrom(raw: string): MailAddress {
  if (defaultFromCache?.raw !== raw) {
    const address = isGraphUserId(raw) ? { address: raw.trim() } : renderedAddress(raw, 'MAIL_FROM')
    defaultFromCache = { raw, address: Object.freeze(address) }
  }
  return defaultFromCache.address
}

function renderTemplate(lease: RenderableRow, t: TemplateRow | undefined): StoredMessage {
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
function renderedBodies(
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
