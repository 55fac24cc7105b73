// /v1/stats: counts by status and oldest pending age, per database (all of them unless ?db= names one).

import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import { AppError } from '../../errors.ts'
import { outboxStats } from '../../outbox/outbox-stats.ts'
import { pastExpiryPendingMeaning } from '../../outbox/past-expiry-pending.ts'
import { withStatementTimeout } from '../../outbox/statement-timeout.ts'
import { requireScope } from '../auth.ts'
import { BEARER_SECURITY } from '../bearer-security.ts'
import { type ApiDeps, type AppEnv, QUERY_TIMEOUT_MS } from '../context.ts'
import { reachableDatabases } from '../database-claim.ts'
import { jsonResponse } from '../json-response.ts'
import { DbQuery } from '../outbox-schemas.ts'
import { Problem, problemOf } from '../problem.ts'
import { problemResponse, V1_PROBLEMS } from '../problem-responses.ts'
import { validationHook } from '../validation-hook.ts'

const Count = z.number().int()

const DatabaseStats = z
  .object({
    name: z.string(),
    counts: z.object({
      pending: Count,
      sending: Count,
      sent: Count,
      failed: Count,
      cancelled: Count,
    }),
    oldestPendingAgeSeconds: z.number().nullable().openapi({
      description: 'now() - send_at of the oldest due pending row (database time); null if none',
    }),
    heldBackPending: Count.openapi({
      description:
        'Pending rows not due yet because a pacing turn (MAILBOX_RATE_PER_MINUTE) or a pause of their mailbox put them later: a backlog oldestPendingAgeSeconds does not count',
    }),
    pastExpiryPending: Count.openapi({
      description: pastExpiryPendingMeaning('Pending rows', 'oldestPendingAgeSeconds'),
    }),
    pausedMailboxes: Count.nullable().openapi({
      description:
        'Sender mailboxes a provider throttle pauses now (the Retry-After of a 429 or 503, Graph refusing the mailbox); null for a token confined to a tenant (pauses belong to the whole database). The count outbox-mailer status shows as PAUSED, by the same rule (its --json pausedMailboxes is an object: this count, longestSeconds and refused)',
    }),
    pausedMailboxesRefused: Count.nullable().openapi({
      description:
        "Of pausedMailboxes, those paused because Graph refuses the mailbox itself (404 ErrorInvalidUser: a mistyped MAIL_FROM; 403: the app not allowed to send from it, MAIL_FROM or a mailbox rows name themselves): check MAIL_FROM or the rows' own from, and the mailbox. The others a provider throttle pauses. null for a token confined to a tenant",
    }),
    refusedMailboxPending: Count.nullable().openapi({
      description:
        "Pending rows that send from a mailbox of pausedMailboxesRefused: those whose own from (or template's from_address) is it, and those naming none when it is MAIL_FROM of a live worker; not a row whose template's from_address has placeholders (its mailbox is known once rendered). outbox-mailer status exits 5 (needs attention) while it is above 0; a refused pause with none ends by itself (5 minutes, or Graph's Retry-After). null for a token confined to a tenant",
    }),
    credentialRefused: z
      .object({
        workers: Count.openapi({
          description:
            'Live workers (registry entries beating within two of their own lease lengths) whose last Graph token request Entra refused for good',
        }),
        codes: z.array(z.string()).openapi({
          description:
            "Their refusals' codes, sorted (AADSTS7000222: the client secret expired; AADSTS700027: the certificate not registered; certificate_expired; …); never Entra's text",
          example: ['AADSTS7000222'],
        }),
        since: z.string().nullable().openapi({
          description:
            'When the earliest of those refusals began (ISO 8601, database time); null with none',
        }),
        cachedTokenWorkers: Count.openapi({
          description:
            'Of those workers, the ones whose cached token still serves sends (the refusal met by a refresh ahead of its end, since migration 0202): they send until it ends',
        }),
        cachedTokenServesUntil: z.string().nullable().openapi({
          description:
            'When the first of those cached tokens stops serving (ISO 8601, database time, as the worker noted it); null when none serves',
        }),
      })
      .nullable()
      .openapi({
        description:
          "The workers' Graph credential as their registry entries note it, each as its token request's answer tells it (refused, or a token again), not at its next beat (an idle worker's once per LEASE_SECONDS; an older release's notes nothing): while `workers` is above 0 their sends wait until the credential is fixed (deploy guide, \"Credential refused\"), those of `cachedTokenWorkers` once their cached token ends (`cachedTokenServesUntil`), and outbox-mailer status exits 5 (needs attention) while rows are pending. null for a token confined to a tenant",
      }),
  })
  .openapi('DatabaseStats')

const DatabaseStatsProblem = z
  .object({
    name: z.string(),
    problem: Problem.openapi({
      description: 'Why this database has no stats (database_unavailable when it did not answer)',
    }),
  })
  .openapi('DatabaseStatsProblem', {
    description: 'A database that did not answer; the others are still reported',
  })

const Stats = z
  .object({ databases: z.array(z.union([DatabaseStats, DatabaseStatsProblem])) })
  .openapi('Stats')

// Without ?db= every database is reported, so there is no "db is required" 400 here; a query that
// does not parse (?db= given twice) still is one.
const problems = {
  ...V1_PROBLEMS,
  400: problemResponse(
    'The query is not valid, e.g. ?db= given more than once (validation_failed)',
    ['validation_failed'],
  ),
}

export function statsRoutes(deps: ApiDeps) {
  const route = createRoute({
    method: 'get',
    path: '/v1/stats',
    operationId: 'getStats',
    tags: ['outbox'],
    summary: 'Counts by status and the oldest pending age, per database',
    security: BEARER_SECURITY,
    middleware: [requireScope('outbox:read')],
    request: { query: DbQuery },
    responses: {
      200: jsonResponse(
        Stats,
        'Stats of each database; one that did not answer carries a problem instead (still 200 while any answered)',
      ),
      ...problems,
    },
  })

  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).openapi(route, async (c) => {
    const { db: name } = c.req.valid('query')
    const reachable = reachableDatabases(deps.databases, c.get('principal'))
    const selected = name ? reachable.filter((d) => d.name === name) : reachable
    if (selected.length === 0) {
      const names = reachable.map((d) => d.name).join(', ')
      throw new AppError('database_unknown', `no database named "${name}"; configured: ${names}`)
    }
    const tenant = c.get('principal').tenant
    const settled = await Promise.allSettled(
      selected.map((d) =>
        withStatementTimeout(d.db, QUERY_TIMEOUT_MS, (trx) => outboxStats(trx, tenant)),
      ),
    )
    // One database down must not hide the others: it is reported in place, and only a request
    // that no database answered fails as a whole (its first error: 503 when unreachable).
    if (settled.every((r) => r.status === 'rejected')) throw settled[0]!.reason
    const databases = settled.map((r, i) => {
      const name = selected[i]!.name
      if (r.status === 'fulfilled') return { name, ...r.value }
      const problem = problemOf(r.reason)
      c.get('log').warn('stats of a database failed', {
        db: name,
        type: problem.type,
        err: r.reason,
      })
      return { name, problem }
    })
    return c.json({ databases }, 200)
  })
}
