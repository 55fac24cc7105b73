// The content type an attachment goes out as, alike in Graph's request and in the file transport's .eml.

// RFC 2046: a multipart/* body is parts (5.1) and a message/* body a message (5.2), neither of them
// bytes a writer may base64 (5.1 and 5.2.1 allow such a body 7bit, 8bit or binary only).
const PARTS_OF_ITS_OWN = /^(multipart|message)\//i

/**
 * `contentType` as given, or `application/octet-stream` for a multipart/* or message/* type: such a
 * type tells a MIME writer the bytes are parts of its own. nodemailer wrote them as the preamble of
 * a multipart holding no part (a reader shows nothing) and message/* unencoded and inline, and what
 * Exchange makes of a fileAttachment so typed is documented nowhere (an EWS report has it write a
 * message/rfc822 file as application/octet-stream: Garethp/php-ews#238). Typed so, the bytes go out
 * whole, base64, under the attachment's file name (a reader opens `forwarded.eml` by its name), and
 * Graph is given what the .eml shows. The row keeps the type as given. mailer.normalize_message
 * (sql/0047) counts the request with this type; keep the two alike.
 */
export function sentContentType(contentType: string): string {
  return PARTS_OF_ITS_OWN.test(contentType) ? 'application/octet-stream' : contentType
}
