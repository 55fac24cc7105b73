// The only place errors become HTTP: application/problem+json (RFC 9457) with a stable type per code.
import { z } from '@hono/zod-openapi'
import type { Context, ErrorHandler, NotFoundHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { AppError, type ErrorCode } from '../errors.ts'
import type { AppEnv } from './context.ts'
import { STATUS, TITLE } from './problem-codes.ts'
import { NUL_MESSAGE } from './storable-text.ts'
import { untranslatableOf, untranslatableRefusal } from './untranslatable-character.ts'
import { notJsonError } from './utf8-body.ts'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** `type` of a problem: a URN per AppError code, stable across releases. */
export const problemType = (code: ErrorCode) => `urn:outbox-mailer:problem:${code}`

export const Problem = z
  .object({
    type: z.string().openapi({ example: problemType('not_found') }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    requestId: z.string().optional(),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .openapi({ description: 'Each invalid field (validation_failed only)' }),
  })
  .openapi('Problem')

function send(
  c: Context<AppEnv>,
  status: ContentfulStatusCode,
  body: z.infer<typeof Problem>,
  headers: Record<string, string> = {},
) {
  const requestId = c.get('requestId')
  return c.body(JSON.stringify({ ...body, status, requestId }), status, {
    ...headers,
    'content-type': PROBLEM_CONTENT_TYPE,
  })
}

// A string Postgres cannot store (U+0000: 22P05 in jsonb, 22021 in text) is the request's fault. The
// schemas refuse it first; this catches one that reached a statement another way (a token claim).
// A character the database's encoding lacks (22P05 too, in a WIN1252 or LATIN1 database) is told
// apart first (untranslatable-character.ts).
const UNSTORABLE_SQLSTATE = new Set(['22P05', '22021'])

// Hono's own rejections, given the fixed code of their status.
const FRAMEWORK_CODE: Partial<Record<number, ErrorCode>> = {
  400: 'validation_failed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
}

const INTERNAL_DETAIL = 'internal error; quote the request id'

/**
 * The problem body of an error, without sending it: for a part of a response that failed on its own
 * (one database of /v1/stats). Anything but an AppError is `internal`, its message never echoed.
 */
export function problemOf(err: unknown): z.infer<typeof Problem> {
  if (!(err instanceof AppError)) {
    return {
      type: problemType('internal'),
      title: 'internal',
      status: 500,
      detail: INTERNAL_DETAIL,
    }
  }
  const status = STATUS[err.code]
  const errors = Array.isArray(err.details?.errors)
    ? (err.details.errors as { path: string; message: string }[])
    : undefined
  // 500s never echo internals; the request id finds the log line.
  const detail = status === 500 ? INTERNAL_DETAIL : err.message
  return { type: problemType(err.code), title: TITLE[err.code] ?? err.code, status, detail, errors }
}

export const onError: ErrorHandler<AppEnv> = (err, c) => {
  if (err instanceof AppError) {
    const status = STATUS[err.code]
    const headers: Record<string, string> = {}
    // RFC 6750 3.1: the error the thrower named in details (token-refusal.ts: invalid_token for a
    // token sent and refused, insufficient_scope for a scope missing); a 401 without one, plain Bearer.
    const bearerError = err.details?.bearerError
    if (typeof bearerError === 'string') {
      headers['www-authenticate'] = `Bearer error="${bearerError}"`
    } else if (err.code === 'unauthorized') {
      headers['www-authenticate'] = 'Bearer'
    }
    // RFC 9110: a 405 lists the methods the path does serve.
    const allow = err.details?.allow
    if (Array.isArray(allow)) headers.allow = allow.join(', ')
    // RFC 9110 15.5.16: which content codings a request may use; none but identity is decoded.
    if (err.code === 'unsupported_media_type') headers['accept-encoding'] = 'identity'
    const retryAfter = err.details?.retryAfterSeconds
    if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter)
    // An outage of the signing keys is logged once by the key set (signing-keys.ts), each request by
    // its access line: not a line per refused request besides.
    if (status >= 500 && err.code !== 'auth_unavailable') {
      c.get('log')?.error('request failed', { code: err.code, err })
    }
    return send(c, status, problemOf(err), headers)
  }
  if (err instanceof HTTPException) {
    // Framework-level rejections: malformed JSON (400), a body that is not JSON (415).
    const code = FRAMEWORK_CODE[err.status]
    if (code === 'unsupported_media_type') {
      return onError(new AppError(code, 'send the body as application/json', {}, { cause: err }), c)
    }
    // Hono's "Malformed JSON in request body": where it breaks, from the text utf8-body.ts cached.
    if (code === 'validation_failed') return malformedBody(c, err)
    if (code) return onError(new AppError(code, err.message || TITLE[code]!, {}, { cause: err }), c)
    const status = err.status as ContentfulStatusCode
    return send(c, status, {
      type: 'about:blank',
      title: err.message || 'Request rejected',
      status,
      detail: err.message || undefined,
    })
  }
  const untranslatable = untranslatableOf(err)
  if (untranslatable) {
    // The request is refused, but the fix is the operator's: said each time, naming no character.
    c.get('log')?.warn(
      'a request value holds a character the database encoding cannot hold (deploy guide, "Database encoding")',
      { encoding: untranslatable.encoding },
    )
    return untranslatableRefusal(c, untranslatable).then((e) => onError(e, c))
  }
  if (UNSTORABLE_SQLSTATE.has((err as { code?: unknown }).code as string)) {
    return send(c, 400, {
      type: problemType('validation_failed'),
      title: TITLE.validation_failed!,
      status: 400,
      detail: `a request value ${NUL_MESSAGE}`,
    })
  }
  c.get('log')?.error('unhandled request error', { err })
  return send(c, 500, problemOf(err))
}

async function malformedBody(c: Context<AppEnv>, err: HTTPException): Promise<Response> {
  const located = notJsonError(await c.req.text().catch(() => null))
  const fallback = new AppError('validation_failed', err.message || TITLE.validation_failed!)
  return onError(located ?? fallback, c)
}

/**
 * A request no route answers: 405 with Allow when the path is served by other methods (`servedAt`
 * names them), else 404; `elsewhere` says where a path this app does not serve is served, if anywhere.
 */
export const notFoundHandler =
  (
    servedAt: (path: string) => string[],
    elsewhere?: (path: string) => string | null,
  ): NotFoundHandler<AppEnv> =>
  (c) => {
    const allow = servedAt(c.req.path)
    if (allow.length > 0) {
      // "POST is", "GET and HEAD are", "GET, HEAD and POST are": the Allow header lists them bare.
      const served =
        allow.length === 1
          ? `${allow[0]} is`
          : `${allow.slice(0, -1).join(', ')} and ${allow.at(-1)} are`
      const detail = `${c.req.method} is not served at ${c.req.path}; ${served}`
      return onError(new AppError('method_not_allowed', detail, { allow }), c)
    }
    // Routes are strict about a trailing slash (a client's URL join adds one): name the served path.
    const bare = c.req.path.replace(/\/+$/, '')
    const slash =
      bare !== '' && bare !== c.req.path && servedAt(bare).includes(c.req.method)
        ? `; the path is ${bare}, without the trailing slash`
        : ''
    return send(c, 404, {
      type: problemType('not_found'),
      title: TITLE.not_found!,
      status: 404,
      detail: elsewhere?.(c.req.path) ?? `no route for ${c.req.method} ${c.req.path}${slash}`,
    })
  }
