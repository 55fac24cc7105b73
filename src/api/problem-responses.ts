// The problem+json answers each route's document declares besides its success, with their headers.
import type { ErrorCode } from '../errors.ts'
import { PROBLEM_CONTENT_TYPE, problemType } from './problem.ts'

/**
 * An OpenAPI response entry for a problem status: the Problem schema, its `type` one of these codes'
 * URNs, so a client learns every problem the status may carry (and an answer of another fails it).
 */
export const problemResponse = (
  description: string,
  codes: readonly [ErrorCode, ...ErrorCode[]],
) => ({
  description,
  content: {
    [PROBLEM_CONTENT_TYPE]: {
      schema: {
        // The component mountDocs registers; a $ref, as zod-openapi writes the named schema.
        allOf: [
          { $ref: '#/components/schemas/Problem' },
          { type: 'object' as const, properties: { type: { enum: codes.map(problemType) } } },
        ],
      },
    },
  },
})

/** The problems every /v1 route can answer. */
export const V1_PROBLEMS = {
  400: problemResponse(
    "The request is not valid (validation_failed), a query parameter the route does not declare included, or one it declares given more than once (each takes one value but GET /v1/outbox's status, repeated for several)",
    ['validation_failed'],
  ),
  401: {
    ...problemResponse(
      'Missing, malformed, expired or otherwise invalid bearer token (unauthorized)',
      ['unauthorized'],
    ),
    headers: {
      'WWW-Authenticate': {
        description:
          'Bearer (RFC 6750); Bearer error="invalid_token" when a token was sent and refused (get a new one)',
        required: true,
        schema: { type: 'string' as const },
      },
    },
  },
  403: {
    ...problemResponse(
      'The token lacks the scope this route needs, or (enqueue) names a tenant other than its tenant claim, or its db claim names no database this service serves (forbidden)',
      ['forbidden'],
    ),
    headers: {
      'WWW-Authenticate': {
        description: 'Bearer error="insufficient_scope" when the scope is what is missing',
        schema: { type: 'string' as const },
      },
    },
  },
  404: problemResponse(
    "Unknown ?db, or one the token's db claim does not name (database_unknown)",
    ['database_unknown'],
  ),
  429: {
    ...problemResponse(
      'Rate limit of this token subject exceeded (rate_limited); or, for a body past 4 MiB (or one sent chunked that passes it), this process reads two such bodies already: repeat it after Retry-After, on this machine or another (large_bodies_busy)',
      ['rate_limited', 'large_bodies_busy'],
    ),
    headers: {
      'Retry-After': {
        description: 'Seconds to wait',
        required: true,
        schema: { type: 'integer' as const },
      },
    },
  },
  503: {
    ...problemResponse(
      "The database is unreachable, the query timed out, Postgres aborted the request to break a deadlock (or a serialization failure, or a lock wait past the database lock_timeout) with a concurrent one, or the database takes no writes now (a standby, a failover under way) and this request writes: Retry-After says when to repeat it; or the database refused this service's login or takes no connections: an operator mends it (database_unavailable); the mailer schema or part of it is missing: an operator runs `outbox-mailer migrate` (schema_missing); the database refused the role a privilege: an operator grants it again (database_permission_denied); with API_JWKS_URL, the signing keys could not be fetched (the endpoint down, timing out, or answering no key set or an empty one), so the token was not judged: keep it and repeat the request after Retry-After (auth_unavailable)",
      ['database_unavailable', 'schema_missing', 'database_permission_denied', 'auth_unavailable'],
    ),
    headers: {
      'Retry-After': {
        description:
          'Seconds to wait: a request aborted by a concurrent one (1), a database that did not answer or a query past its timeout (5), a write refused by a read-only database (5), signing keys unavailable (5); none when only an operator mends it (a refused login, a closed database, schema_missing, database_permission_denied)',
        schema: { type: 'integer' as const },
      },
    },
  },
  // A bug, or a database error that is neither an outage nor a schema or privilege gone: the body
  // says only to quote the request id, never what failed.
  500: problemResponse(
    'An error the API does not expect (internal): the detail only asks to quote requestId, which finds the log line',
    ['internal'],
  ),
} as const

/** What a /v1 route naming one row (by id) can answer besides V1_PROBLEMS: the row may not be there. */
export const ROW_PROBLEMS = {
  404: problemResponse(
    'Unknown ?db (database_unknown), or no such row visible to this token (not_found)',
    ['database_unknown', 'not_found'],
  ),
} as const

/** What every /v1 POST route can answer besides V1_PROBLEMS: the limit holds for any body it is sent. */
export const BODY_PROBLEMS = {
  413: problemResponse('The body is larger than the limit (payload_too_large)', [
    'payload_too_large',
  ]),
} as const

/** What a /v1 route that takes a JSON body can answer besides V1_PROBLEMS. */
export const JSON_BODY_PROBLEMS = {
  ...BODY_PROBLEMS,
  415: {
    ...problemResponse(
      'The body is not sent as application/json, or is sent compressed (a Content-Encoding other than identity) (unsupported_media_type)',
      ['unsupported_media_type'],
    ),
    headers: {
      'Accept-Encoding': {
        description: 'identity: a body is taken uncompressed only (RFC 9110 15.5.16)',
        required: true,
        schema: { type: 'string' as const },
      },
    },
  },
} as const
