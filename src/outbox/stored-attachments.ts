// A stored message's attachments, each checked at send as mailer.enqueue_email checks one.
import { CONTROL_CHARACTER_MESSAGE, hasControlCharacter } from './header-text.ts'
import { MIME_TYPE, MIME_TYPE_MESSAGE } from './mime-type.ts'
import { invalidMessage as invalid } from './render-error.ts'
import type { MailAttachment } from './sender.ts'

// Base64 as mailer.normalize_message takes it (sql/0024: '^[A-Za-z0-9+/\s]*={0,2}\s*$'): whitespace
// anywhere before the padding, none between its signs. Written so a long run of whitespace before a
// stray character costs linear time, not quadratic. Buffer.from skipped anything else, silently.
const BASE64 = /^[A-Za-z0-9+/\t\n\v\f\r ]*(?:={1,2}[\t\n\v\f\r ]*)?$/

/** The attachments, each checked as mailer.enqueue_email checks one (sql/0023, 0024, 0029). */
export function sendableAttachments(attachments: unknown): MailAttachment[] {
  if (attachments === undefined || attachments === null) return []
  if (!Array.isArray(attachments)) throw invalid('message.attachments', 'must be an array')
  return attachments.map((a: Record<string, unknown>, i): MailAttachment => {
    const field = `message.attachments[${i}]`
    if (
      typeof a !== 'object' ||
      a === null ||
      typeof a.filename !== 'string' ||
      a.filename === '' ||
      typeof a.contentBase64 !== 'string' ||
      !BASE64.test(a.contentBase64)
    ) {
      throw invalid(
        field,
        'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content',
      )
    }
    const contentType = a.contentType ?? 'application/octet-stream'
    if (typeof contentType !== 'string' || !MIME_TYPE.test(contentType))
      throw invalid(`${field}.contentType`, MIME_TYPE_MESSAGE)
    if (hasControlCharacter(a.filename))
      throw invalid(`${field}.filename`, CONTROL_CHARACTER_MESSAGE)
    // Whole groups of four (sql/0029): Graph's decoder refuses unpadded or 4n+1 characters.
    const content = a.contentBase64.replace(/\s+/g, '')
    if (content.length % 4 !== 0)
      throw invalid(
        `${field}.contentBase64`,
        `must be whole groups of four base64 characters (pad the last with =); this holds ${content.length}`,
      )
    const contentId = a.contentId ?? null
    if (contentId !== null && typeof contentId !== 'string')
      throw invalid(`${field}.contentId`, 'must be a string')
    if (contentId !== null && hasControlCharacter(contentId))
      throw invalid(`${field}.contentId`, CONTROL_CHARACTER_MESSAGE)
    return {
      filename: a.filename,
      contentType,
      contentBase64: content,
      ...(contentId ? { contentId } : {}),
    }
  })
}
