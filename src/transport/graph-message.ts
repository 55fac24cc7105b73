// Builds the JSON body of Graph sendMail from a rendered OutboundMail, within Graph's documented limits.
import type { MailAddress, OutboundMail } from '../outbox/sender.ts'
import { sentContentType } from './attachment-type.ts'

/** Our namespace for MAPI named properties. Fixed forever: recovery lookups search by it. */
const OUTBOX_PROPERTY_SET_GUID = '5b1f3c2e-8d47-4a8e-9c61-0e7a1d9b4f25'
/** The single-value extended property carrying the outbox id (Graph's `String {GUID} Name X` form). */
export const OUTBOX_ID_PROPERTY_ID = `String {${OUTBOX_PROPERTY_SET_GUID}} Name OutboxId`
/**
 * The property naming the database whose row the message is (MAILER_DATABASES name): ids repeat
 * across databases, so the outbox id alone does not say which row a message in the mailbox is.
 */
export const OUTBOX_DATABASE_PROPERTY_ID = `String {${OUTBOX_PROPERTY_SET_GUID}} Name OutboxDatabase`
/**
 * The property carrying the database's own id (mailer.database_identity, sql/0048): two databases
 * may share a name (every DATABASE_URL one is `default`), never this.
 */
export const OUTBOX_DATABASE_ID_PROPERTY_ID = `String {${OUTBOX_PROPERTY_SET_GUID}} Name OutboxDatabaseId`

/** Graph: "The maximum request length supported is 4MB". */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024
/** Graph's documented inline limit; base64 makes 3 MB of bytes 4 MB of JSON, so both checks apply. */
export const MAX_INLINE_ATTACHMENT_BYTES = 3 * 1024 * 1024
/** Graph: custom headers must start with x- and there may be at most 5 of them. */
const MAX_INTERNET_HEADERS = 5
/** A header value of spaces and tabs only (or none): nodemailer writes no line for it. A no-break space is no blank here: it is written, encoded (RFC 2047). */
const BLANK = /^[ \t]*$/

const ATTACHMENT_TOO_LARGE = 'attachment_too_large'

interface SendMailBody {
  message: Record<string, unknown>
  saveToSentItems: boolean
}

const MESSAGE_TOO_LARGE = 'message_too_large'

/**
 * A permanent problem with the request Graph would get, or null when it fits one sendMail call.
 * `requestJson` is the serialized body; Graph's 4 MB counts the whole request, not just attachments.
 */
export function checkSendable(
  mail: OutboundMail,
  requestJson: string,
): { code: string; message: string } | null {
  const bytes = attachmentBytes(mail)
  if (bytes > MAX_INLINE_ATTACHMENT_BYTES) {
    return {
      code: ATTACHMENT_TOO_LARGE,
      message: `attachments total ${bytes} bytes; sendMail takes at most ${MAX_INLINE_ATTACHMENT_BYTES}`,
    }
  }
  const requestBytes = Buffer.byteLength(requestJson)
  if (requestBytes > MAX_REQUEST_BYTES) {
    return {
      code: mail.attachments.length > 0 ? ATTACHMENT_TOO_LARGE : MESSAGE_TOO_LARGE,
      message: `the sendMail request is ${requestBytes} bytes; Graph takes at most ${MAX_REQUEST_BYTES}`,
    }
  }
  return null
}

/** Decoded size of all attachments, computed from the base64 length without decoding. */
export function attachmentBytes(mail: OutboundMail): number {
  let total = 0
  for (const a of mail.attachments) {
    const b64 = a.contentBase64.replace(/\s+/g, '')
    const padding = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0
    total += Math.floor((b64.length * 3) / 4) - padding
  }
  return total
}

export function buildSendMailBody(
  mail: OutboundMail,
  /**
   * `database`: the name of the database whose row `mail` is (OUTBOX_DATABASE_PROPERTY_ID);
   * `databaseId`: its own id (OUTBOX_DATABASE_ID_PROPERTY_ID).
   */
  opts: { saveToSentItems: boolean; database?: string; databaseId?: string },
): SendMailBody {
  const message: Record<string, unknown> = {
    subject: mail.subject,
    // An empty html is no body: the .eml has no HTML part for it (nodemailer), and a text beside
    // it is the message (sent as an empty HTML body, the recipient saw nothing). A blank one beside
    // a text that shows something the renderer left out already (shownBodies).
    body:
      mail.html !== null && mail.html !== ''
        ? { contentType: 'HTML', content: mail.html }
        : { contentType: 'Text', content: mail.text ?? '' },
    toRecipients: mail.to.map(recipient),
  }
  if (mail.cc.length > 0) message.ccRecipients = mail.cc.map(recipient)
  if (mail.bcc.length > 0) message.bccRecipients = mail.bcc.map(recipient)
  if (mail.replyTo.length > 0) message.replyTo = mail.replyTo.map(recipient)
  if (mail.importance !== null) message.importance = mail.importance
  message.internetMessageHeaders = internetHeaders(mail)
  message.singleValueExtendedProperties = [
    { id: OUTBOX_ID_PROPERTY_ID, value: mail.outboxId },
    ...(opts.database ? [{ id: OUTBOX_DATABASE_PROPERTY_ID, value: opts.database }] : []),
    ...(opts.databaseId ? [{ id: OUTBOX_DATABASE_ID_PROPERTY_ID, value: opts.databaseId }] : []),
  ]
  if (mail.attachments.length > 0) {
    message.attachments = mail.attachments.map((a) => ({
      '@odata.type': '#microsoft.graph.fileAttachment',
      name: a.filename,
      contentType: sentContentType(a.contentType),
      contentBytes: a.contentBase64.replace(/\s+/g, ''),
      ...(a.contentId ? { contentId: a.contentId, isInline: true } : { isInline: false }),
    }))
  }
  return { message, saveToSentItems: opts.saveToSentItems }
}

function recipient(a: MailAddress) {
  return { emailAddress: a.name ? { address: a.address, name: a.name } : { address: a.address } }
}

/**
 * X-Outbox-Id always (so the list is never empty, which Graph rejects), X-Correlation-Id when known,
 * then the mail's own x- headers until Graph's limit of five. Others are dropped: Graph refuses them.
 * So is one whose value is empty or blanks (spaces, tabs): the .eml holds no such line (nodemailer
 * writes none), and what Exchange does with an empty value is documented nowhere, so no row can
 * fail on one. Of names alike but for case the first decides, blank or not, as in the .eml.
 */
function internetHeaders(mail: OutboundMail): { name: string; value: string }[] {
  const headers = [{ name: 'X-Outbox-Id', value: mail.outboxId }]
  // One line without control characters: refused in options.correlationId at enqueue since
  // sql/0024, and folded at render in a row stored before (sendableCorrelationId).
  if (mail.correlationId) headers.push({ name: 'X-Correlation-Id', value: mail.correlationId })
  const taken = new Set(headers.map((h) => h.name.toLowerCase()))
  for (const [name, value] of Object.entries(mail.headers)) {
    if (headers.length >= MAX_INTERNET_HEADERS) break
    const lower = name.toLowerCase()
    if (!lower.startsWith('x-') || taken.has(lower)) continue
    taken.add(lower)
    if (BLANK.test(value)) continue
    headers.push({ name, value })
  }
  return headers
}
