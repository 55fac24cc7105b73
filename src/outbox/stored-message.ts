// A message as a row holds it, checked at send for what enqueue refuses today but an older row may hold.

import { isBlank } from './blank-body.ts'
import { headerAlikeButForCase, headerLineBytes, MAX_HEADER_BYTES } from './header-size.ts'
import { foldControlCharacters, HEADER_VALUE_MESSAGE, isOneLineHeaderValue } from './header-text.ts'
import { invalidMessage as invalid } from './render-error.ts'

export interface StoredMessage {
  from?: unknown
  to?: unknown
  cc?: unknown
  bcc?: unknown
  replyTo?: unknown
  subject?: string
  text?: unknown
  html?: unknown
  importance?: unknown
  headers?: Record<string, string>
  attachments?: unknown
}

// A row written before sql/0014 and 0020, or inserted around mailer.enqueue_email, was stored
// unchecked. Every string here becomes a header: sent as stored, a line break wrote a broken .eml
// (nodemailer drops it inside a Content-Type) or reached Graph as it was. What enqueue folds is
// folded; what it refuses fails the row, before any transport sees it (recipients:
// stored-recipients.ts).

/**
 * options.correlationId as X-Correlation-Id: one line, or no header when nothing is left. Refused
 * with a control character at enqueue since sql/0024, but a row stored before (or inserted directly)
 * may hold one, and Graph took all but CR and LF into the header as they were. Failing the row would
 * fail the previous release's mail for an id only the application reads: folded as a subject is.
 */
export function sendableCorrelationId(id: string | null): string | null {
  const folded = id === null ? '' : foldControlCharacters(id)
  return folded === '' ? null : folded
}

/**
 * The subject on one line (mailer.fold_control_characters); a row without one fails. Blank is
 * spaces only, as enqueue's btrim trims: a no-break or an ideographic space is a subject to it.
 */
export function sendableSubject(subject: unknown): string {
  const folded = typeof subject === 'string' ? foldControlCharacters(subject) : ''
  if (/^ *$/.test(folded))
    throw invalid('message.subject', 'is required and must be a non-empty string')
  return folded
}

/**
 * Longer than enqueue takes a subject: 998 characters, counted as SQL's length() counts them (code
 * points: an emoji is one, though two UTF-16 units).
 */
export const isSubjectTooLong = (subject: string): boolean =>
  subject.length > 998 && [...subject].length > 998

/** A stored subject as long as enqueue takes one (a template's: renderedSubject in render-template.ts). */
export function sendableStoredSubject(subject: string): string {
  if (isSubjectTooLong(subject)) throw invalid('message.subject', 'must be at most 998 characters')
  return subject
}

/** The bodies: each a string or absent, at least one of them (here an empty string is one). */
export function sendableBodies(m: StoredMessage): { text: string | null; html: string | null } {
  const text = m.text ?? null
  const html = m.html ?? null
  if (text !== null && typeof text !== 'string') throw invalid('message.text', 'must be a string')
  if (html !== null && typeof html !== 'string') throw invalid('message.html', 'must be a string')
  if (text === null && html === null) throw invalid('message.text', 'or message.html is required')
  return { text, html }
}

/**
 * A stored message's bodies as enqueue takes them (sql/0174, 0175): "" is no body, nor are blanks
 * only (blank-body.ts), so one must show something unless the message carries a file, which then
 * is the mail (a row stored before went out as an empty mail). Named as enqueue names it: the text
 * when given. A template's are its own, rendered (renderLease).
 */
export function sendableStoredBodies(
  bodies: { text: string | null; html: string | null },
  /** As stored: checked by sendableAttachments, after. */
  attachments: unknown,
): { text: string | null; html: string | null } {
  if (isBodiless(bodies) && !(Array.isArray(attachments) && attachments.length > 0))
    throw invalid(
      bodies.text !== null ? 'message.text' : 'message.html',
      'must not be empty ("" is no body): a message needs message.text or message.html',
    )
  return bodies
}

/**
 * The bodies a transport sends: a blank one ("" or blanks only) beside one that shows something is
 * none, so that one is the whole mail. Graph takes one body and took the html, a blank one too
 * (the text dropped, the recipient saw nothing); the .eml held a blank part beside it, which a
 * reader preferring that type shows. Both blank (beside a file) are sent as they are.
 */
export function shownBodies(bodies: { text: string | null; html: string | null }): {
  text: string | null
  html: string | null
} {
  const { text, html } = bodies
  if (text !== null && html !== null && isBlank(text) !== isBlank(html))
    return isBlank(text) ? { text: null, html } : { text, html: null }
  return bodies
}

/** Neither body shows anything: each absent, "" or blanks only. */
export const isBodiless = (bodies: { text: string | null; html: string | null }): boolean =>
  isBlank(bodies.text ?? '') && isBlank(bodies.html ?? '')

/** Graph's importance, one of its three values, or none. */
export function sendableImportance(importance: unknown): 'low' | 'normal' | 'high' | null {
  if (importance === undefined || importance === null) return null
  if (importance === 'low' || importance === 'normal' || importance === 'high') return importance
  throw invalid('message.importance', 'must be low, normal or high')
}

// The names mailer.normalize_message takes (sql/0024): X- headers, ours excepted (the transports add them).
const HEADER_NAME = /^[Xx]-[A-Za-z0-9-]{1,70}$/
const OUR_HEADERS = new Set(['x-outbox-id', 'x-correlation-id'])

/**
 * The message's own X- headers, as enqueue takes them: an object of at most three, each named
 * `X-…` (not one of ours: the file transport wrote a stored `x-outbox-id` as a second X-Outbox-Id,
 * ahead of the real one) with one line of text, 256 KB as lines together, no two named alike but
 * for case; anything else fails the row.
 */
export function sendableHeaders(headers: unknown): Record<string, string> {
  if (headers === undefined || headers === null) return {}
  if (typeof headers !== 'object' || Array.isArray(headers))
    throw invalid('message.headers', 'must be an object of "X-Name": "value"')
  const entries = Object.entries(headers)
  if (entries.length > 3)
    throw invalid(
      'message.headers',
      'may hold at most 3 headers (X-Outbox-Id and X-Correlation-Id are added)',
    )
  for (const [name, value] of entries) {
    if (!HEADER_NAME.test(name) || OUR_HEADERS.has(name.toLowerCase()))
      throw invalid(
        `message.headers.${name}`,
        'must be an X- header name other than X-Outbox-Id and X-Correlation-Id',
      )
    if (typeof value !== 'string' || !isOneLineHeaderValue(value))
      throw invalid(`message.headers.${name}`, HEADER_VALUE_MESSAGE)
  }
  const bytes = headerLineBytes(entries as [string, string][])
  if (bytes > MAX_HEADER_BYTES)
    throw invalid(
      'message.headers',
      `must total at most ${MAX_HEADER_BYTES} bytes as "Name: value" lines (256 KB: Exchange Online takes no larger message header); these total ${bytes}`,
    )
  // One header to the recipient: a transport would send one of them and drop the other unsaid.
  const alike = headerAlikeButForCase(entries.map(([name]) => name))
  if (alike)
    throw invalid(
      `message.headers.${alike[0]}`,
      `is the same header as ${alike[1]} (header names are case-insensitive): give one of them`,
    )
  return headers as Record<string, string>
}
