// A stored message's attachments, each checked at send as mailer.enqueue_email checks one.
import { base64Content } from './base64-content.ts'
import { CONTROL_CHARACTER_MESSAGE, hasControlCharacter } from './header-text.ts'
import { MIME_TYPE, MIME_TYPE_MESSAGE } from './mime-type.ts'
import { invalidMessage as invalid } from './render-error.ts'
import type { MailAttachment } from './sender.ts'

/** The attachments, each checked as mailer.enqueue_email checks one (sql/0023, 0024, 0029). */
export function sendableAttachments(attachments: unknown): MailAttachment[] {
  if (attachments === undefined || attachments === null) return []
  if (!Array.isArray(attachments)) throw invalid('message.attachments', 'must be an array')
  return attachments.map((a: Record<string, unknown>, i): MailAttachment => {
    const field = `message.attachments[${i}]`
    const base64 = typeof a?.contentBase64 === 'string' ? base64Content(a.contentBase64) : null
    if (
      typeof a !== 'object' ||
      a === null ||
      typeof a.filename !== 'string' ||
      a.filename === '' ||
      base64 === null ||
      ('refused' in base64 && base64.refused === 'alphabet')
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
    if ('refused' in base64)
      throw invalid(
        `${field}.contentBase64`,
        `must be whole groups of four base64 characters (pad the last with =); this holds ${base64.characters}`,
      )
    const contentId = a.contentId ?? null
    if (contentId !== null && typeof contentId !== 'string')
      throw invalid(`${field}.contentId`, 'must be a string')
    if (contentId !== null && hasControlCharacter(contentId))
      throw invalid(`${field}.contentId`, CONTROL_CHARACTER_MESSAGE)
    return {
      filename: a.filename,
      contentType,
      contentBase64: base64.content,
      ...(contentId ? { contentId } : {}),
    }
  })
}
