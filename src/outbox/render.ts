// Turns a claimed row into an OutboundMail: a stored message, checked, or a template filled from the source row.
import { isSenderAllowed } from '../config/allowed-senders.ts'
import { isGraphUserId } from '../config/sender-address.ts'
import type { TemplateRow } from '../db/schema.ts'
import type { Lease } from './claim.ts'
import { headerFieldsBytes, headerFieldsBytesAtMost, MAX_HEADER_BYTES } from './header-size.ts'
import { NOT_SENT, RenderError } from './render-error.ts'
import { renderedBodies, renderTemplate } from './render-template.ts'
import { renderedAddress } from './rendered-address.ts'
import type { MailAddress, OutboundMail } from './sender.ts'
import { sendableAttachments } from './stored-attachments.ts'
import {
  type StoredMessage,
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
  return renderWith(lease, templates, allowedSenders, defaultSenderOf(defaultFrom))
}

// MAIL_FROM as the sender of a row naming none: the same for every row of a process, so made once
// (frozen, as parseDefaultFrom's), not a closure and a sender per row on each pickup's way to its send.
let defaultSender: { raw: string | null; unnamed: () => MailAddress | null } | null = null
function defaultSenderOf(raw: string | null): () => MailAddress | null {
  if (defaultSender === null || defaultSender.raw !== raw) {
    let made: MailAddress | null | undefined
    defaultSender = {
      raw,
      // Made at the first row naming none, as before: a row naming its own never reads MAIL_FROM.
      unnamed: () => {
        if (made === undefined) {
          const sender = sendableSender(null, raw ? parseDefaultFrom(raw) : null)
          made = sender && Object.freeze(sender)
        }
        return made
      },
    }
  }
  return defaultSender.unnamed
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
  // The fields it counts, not a copy of the whole mail: this runs on every pickup's way to its send.
  const { subject, to, cc, replyTo, headers } = mail
  const fields = { subject, from: own, to, cc, replyTo, headers }
  // Their UTF-16 lengths bound their bytes: far under the limit (every row of ordinary size), no count.
  if (headerFieldsBytesAtMost(fields) <= MAX_HEADER_BYTES) return
  const bytes = headerFieldsBytes(fields)
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
