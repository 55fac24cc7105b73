// A JSON body must be uncompressed UTF-8 naming each key once (RFC 8259): one that is not is refused, never read with U+FFFD in place of its bytes or a value dropped; one that is no JSON, told where it breaks.
import { createMiddleware } from 'hono/factory'
import { jsonSyntaxError, whereJsonBreaks } from '../config/json-syntax-error.ts'
import { AppError } from '../errors.ts'
import type { AppEnv } from './context.ts'
import { duplicateKeyPath } from './duplicate-keys.ts'

// The media types Hono's JSON validator reads as JSON; any other is its 415.
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i

const GIVEN_TWICE =
  'is given twice in one object: name each key once (RFC 8259), the later would silently replace the earlier'

/**
 * A body of JSON's blanks alone (RFC 8259: space, tab, LF, CR), or none. Not trim()'s, which also
 * strips a no-break space or a byte order mark, no JSON blank: such a body is no JSON, not empty.
 * (A leading byte order mark the decoder drops, as RFC 8259 lets a parser: one before `{}` is read.)
 */
const isBlank = (text: string) => /^[ \t\n\r]*$/.test(text)

const NOT_UTF8 =
  'is not UTF-8 (RFC 8259): send the JSON encoded as UTF-8 (a client set to its platform charset sends Latin-1)'

/**
 * A body text the route's JSON parser refused (Hono's "Malformed JSON in request body"), said where
 * it breaks and what JSON expects there, never quoted (it may hold what a client keeps private);
 * null when `text` is empty or parses. Asked only after the parser refused: nothing scans a body
 * that parses.
 */
export function notJsonError(text: string | null): AppError | null {
  if (text === null || isBlank(text)) return null
  const at = jsonSyntaxError(text)
  if (at === null) return null
  const message = `is not valid JSON${whereJsonBreaks(at)}`
  return new AppError('validation_failed', `the body ${message}`, {
    errors: [{ path: '(root)', message }],
  })
}

/**
 * Runs before a route that reads a JSON body, `shape` the body it takes (said when none is sent).
 * A body in another charset (a Java client's ISO-8859-1 default) would be decoded with U+FFFD for
 * each byte UTF-8 does not take, so "Grüße" went out as "Gr�ße": refused instead, naming the body.
 * The text decoded here is what the route's validator parses (at most its route's body limit,
 * body-limits.ts).
 */
export const utf8JsonBody = (shape: string) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const type = c.req.header('content-type')?.split(';')[0]?.trim() ?? ''
    if (c.req.method !== 'POST' || !JSON_MEDIA_TYPE.test(type)) return next()
    // Nothing decodes a content coding here: gzip's bytes were refused as "not UTF-8, Latin-1?",
    // which sends the client after its charset. RFC 9110 15.5.16: a coding not supported is a 415.
    const coding = c.req.header('content-encoding')?.trim().toLowerCase()
    if (coding && coding !== 'identity') {
      throw new AppError(
        'unsupported_media_type',
        'a compressed body (Content-Encoding) is not accepted: send the JSON uncompressed',
      )
    }
    const bytes = await c.req.arrayBuffer()
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    } catch {
      throw new AppError('validation_failed', `the body ${NOT_UTF8}`, {
        errors: [{ path: '(root)', message: NOT_UTF8 }],
      })
    }
    // No body at all was "Malformed JSON in request body", which sent the client after its syntax.
    if (isBlank(text)) {
      const message = `is empty: send a JSON object, ${shape}`
      throw new AppError('validation_failed', `the body ${message}`, {
        errors: [{ path: '(root)', message }],
      })
    }
    // JSON.parse keeps a repeated key's later value: a recipient, a filter's ids dropped unsaid.
    const repeated = duplicateKeyPath(text)
    if (repeated !== null) {
      throw new AppError('validation_failed', `${repeated}: ${GIVEN_TWICE}`, {
        errors: [{ path: repeated, message: GIVEN_TWICE }],
      })
    }
    // The validator's c.req.json() parses this text: without it, Hono decoded the bytes again (a
    // Response made of them), an 8 MB body's second decode and copy. The bytes are let go. The cache
    // holds promises (hono/dist/request.js's #cachedBody), which its type does not say.
    c.req.bodyCache = { text: Promise.resolve(text) as unknown as string }
    return next()
  })
