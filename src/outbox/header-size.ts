// A message's own header lines, held to Exchange Online's 256 KB as enqueue holds them (sql/0033, 0086).
import type { MailAddress } from './sender.ts'

/** "In Exchange Online, the header limit is capped at 256 KB" (Office.InternetHeaders, Microsoft Learn). */
export const MAX_HEADER_BYTES = 262_144

/**
 * The "Name: value" lines (UTF-8, CRLF) of the headers the transport sends: the first of names
 * equal but for case. Less than the whole header, so past the limit it cannot pass (sql/0033).
 */
export function headerLineBytes(entries: readonly [string, string][]): number {
  if (entries.length === 0) return 0
  const seen = new Set<string>()
  let bytes = 0
  for (const [name, value] of entries) {
    if (seen.has(name.toLowerCase())) continue
    seen.add(name.toLowerCase())
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 4
  }
  return bytes
}

interface HeaderFields {
  subject: string
  /** The sender the row names; MAIL_FROM, which it does not, enqueue never counted. */
  from: MailAddress | null
  to: readonly MailAddress[]
  cc: readonly MailAddress[]
  replyTo: readonly MailAddress[]
  headers: Record<string, string>
}

// One line of addresses: "Label: " and each "name <address>" (the address alone without a name),
// joined by ", ", with CRLF; no line for none.
function addressLineBytes(label: string, list: readonly MailAddress[]): number {
  if (list.length === 0) return 0
  let bytes = Buffer.byteLength(label) + 2 + 2 * (list.length - 1)
  // " <" and ">" around the address after a name.
  for (const a of list)
    bytes +=
      Buffer.byteLength(a.address) +
      (typeof a.name === 'string' ? Buffer.byteLength(a.name) + 3 : 0)
  return bytes
}

/**
 * The bytes the message's own fields take as header lines, at their least, as
 * mailer.header_lines_bytes counts them (sql/0086): Subject, From, To, Cc and Reply-To (Bcc aside:
 * no sent header holds it) and the X- headers. Exchange writes more, so past MAX_HEADER_BYTES the
 * message surely cannot pass.
 */
/**
 * At least headerFieldsBytes(m), from lengths alone: UTF-8 takes at most 3 bytes per UTF-16 code
 * unit (a surrogate pair's 4 for 2 units, a lone surrogate's replacement character 3), the labels
 * (at most "Reply-To: ") and separators counted at their longest, every header as if none repeated
 * another. No Buffer call, entries array or copy: it runs on every pickup's way to its send, where
 * it spares headerFieldsBytes unless a row's header fields come within a third of the limit.
 */
export function headerFieldsBytesAtMost(m: HeaderFields): number {
  let bytes = 'Subject: '.length + 3 * m.subject.length + 2
  if (m.from) bytes += addressesBytesAtMost(m.from, null)
  bytes += addressesBytesAtMost(null, m.to)
  bytes += addressesBytesAtMost(null, m.cc)
  bytes += addressesBytesAtMost(null, m.replyTo)
  for (const name in m.headers) bytes += 3 * (name.length + m.headers[name]!.length) + 4
  return bytes
}

/** addressLineBytes' bound, its label at the longest ("Reply-To: "): one address, or a list. */
function addressesBytesAtMost(
  one: MailAddress | null,
  list: readonly MailAddress[] | null,
): number {
  const n = one ? 1 : list!.length
  if (n === 0) return 0
  let bytes = 'Reply-To: '.length + 2
  for (let i = 0; i < n; i++) {
    const a = one ?? list![i]!
    bytes += 3 * (a.address.length + (typeof a.name === 'string' ? a.name.length : 0)) + 2 + 3
  }
  return bytes
}

export function headerFieldsBytes(m: HeaderFields): number {
  return (
    'Subject: '.length +
    Buffer.byteLength(m.subject) +
    2 +
    addressLineBytes('From: ', m.from ? [m.from] : []) +
    addressLineBytes('To: ', m.to) +
    addressLineBytes('Cc: ', m.cc) +
    addressLineBytes('Reply-To: ', m.replyTo) +
    headerLineBytes(Object.entries(m.headers))
  )
}

/**
 * Two header names alike but for case, as enqueue names them (sql/0086: the first in jsonb's key
 * order, which a stored row's keys arrive in, and the other that sorts after it), or null.
 */
export function headerAlikeButForCase(names: readonly string[]): [string, string] | null {
  for (const name of names) {
    const lower = name.toLowerCase()
    const other = names.find((o) => o !== name && o.toLowerCase() === lower && o > name)
    if (other !== undefined) return [name, other]
  }
  return null
}
