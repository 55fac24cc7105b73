// claimBatch: the statement that takes due rows (claim_batch; claim_notified or claim_past_paused when asked), with a fresh lease per row, in database time.
import type { Kysely } from 'kysely'
import type { Queryable } from '../db/queryable.ts'
import type { Database } from '../db/schema.ts'
import { statementText } from '../db/single-statement-db.ts'
import { type LeaseTuple, parseClaim, toLease } from './claim-answer.ts'
import { claimPastPaused } from './claim-past-paused.ts'
import type { PauseLeftMs } from './endless-pause.ts'
import type { Lease } from './lease.ts'
import { RATE_IN_FORCE } from './pacing-rate.ts'
import { pauseEnd } from './paused-now.ts'

export type { Lease }

export interface ClaimParams {
  limit: number
  /** What the claimed rows' lease_owner names: a drainer's lease key (lease-key.ts), not its long id. */
  workerId: string
  leaseSeconds: number
  defaultMaxAttempts: number
  /**
   * Record the send as started in the claim itself, for transports that send at once (no shared
   * limits to wait for): the claim is then the last check before the send. Never for ambiguous,
   * cancelled or expired rows, nor for one with an expiry (sql/0017): it may wait in the local
   * queue past it, so its last check comes in its send slot.
   */
  markStarted?: boolean
  /**
   * The one row a notification named since the last claim began, with no backlog known: tried
   * alone first (mailer.claim_notified, sql/0030), by its primary key. When it is pending but not
   * taken (locked, not due, a row ahead of it), the claim runs as without it; when it is no longer
   * pending (another worker took it), the claim takes nothing.
   */
  notifiedId?: string
  /**
   * MAIL_FROM's pause key, when the worker has met its pause: the claim reads the pause itself
   * (mailer.claim_past_paused, sql/0039) and, while it stands longer than `holdMs`, takes only
   * rows that name a sender of their own; over, it takes one row of MAIL_FROM's to probe the
   * mailbox (sql/0041), or, none due yet, says when the first of them is due, however far off
   * (probeInMs), and takes only rows naming a sender of their own meanwhile (sql/0051, 0057);
   * nothing of MAIL_FROM's pending: any one row. notifiedId is not tried.
   */
  pausedSender?: { key: string; holdMs: number }
  /**
   * MAIL_FROM's pause key, when the worker has not met its pause (or no longer knows it): the claim
   * first reads MAIL_FROM's row of mailer.mailbox_pacing (its primary key) and, a probe owed there
   * (sql/0062) or a pause standing past `holdMs`, takes nothing and answers `owed`: the worker
   * claims again with pausedSender. So a worker restarted during a pause, or one that never met it,
   * honours it as the one that did.
   */
  mailFromGuard?: { key: string; holdMs: number }
}

export interface Claim {
  leases: Lease[]
  /** When the claim took fewer rows than asked: ms until the earliest future send_at, if any. */
  nextDueInMs: number | null
  /** With pausedSender: ms its pause still stands (rows of it left out), null when it is over. */
  pausedMs?: PauseLeftMs | null
  /**
   * With pausedSender, its pause over: ms until MAIL_FROM's first row is due, the probe's, when
   * none was due yet (rows of it left out; nextDueInMs says so too); else null.
   */
  probeInMs?: number | null
  /** With mailFromGuard: MAIL_FROM's pause or its probe is owed, and nothing was claimed. */
  owed?: boolean
}

// The claim's statements, written out: each call sends one with its values and builds no Kysely
// nodes (statementText). Values of the first two: limit, worker id, lease token, lease seconds, max
// attempts. Each answers its JSON as text, parsed by parseClaim (claim-answer.ts): the driver's
// JSON.parse of a json column would lose a source row's numbers.
const CLAIM_STARTED = `
  /* prepared outbox_claim_batch */
  select mailer.claim_batch($1::int, $2::text, $3::uuid, $4::float8, true, $5::int)::text as claim`
const CLAIM_UNFLUSHED = `
  /* prepared outbox_claim_unflushed */
  select mailer.claim_unflushed($1::int, $2::text, $3::uuid, $4::float8, $5::int)::text as claim`
// The same, unless MAIL_FROM's pause or its probe is owed (sql/0062): its mailbox_pacing row by
// primary key first; owed, the claim is not run (CASE evaluates its branch only when taken). Values
// as above, then MAIL_FROM's key and the hold (ms) past which a pause counts. The pause is the
// shared rule's (pauseEnd, paused-now.ts: a pacing turn is none, a throttle within one is), read
// with the rate in force (the newest worker's, by primary key) only while next_at is in the future.
const owedFrom = (
  key: string,
  holdMs: string,
) => `(select exists (select from mailer.mailbox_pacing p
                          where p.mailbox = ${key}::text
                            and (p.probe_owed
                                 or p.next_at > now()
                                    and ${pauseEnd('p', RATE_IN_FORCE)}
                                        > now() + make_interval(secs => ${holdMs}::float8 / 1000))) as owed)`
const OWED = owedFrom('$6', '$7')
const CLAIM_STARTED_UNOWED = `
  /* prepared outbox_claim_batch_unowed */
  select case when g.owed then null
              else mailer.claim_batch($1::int, $2::text, $3::uuid, $4::float8, true, $5::int)::text end as claim, g.owed
    from ${OWED} g`
const CLAIM_UNFLUSHED_UNOWED = `
  /* prepared outbox_claim_unflushed_unowed */
  select case when g.owed then null
              else mailer.claim_unflushed($1::int, $2::text, $3::uuid, $4::float8, $5::int)::text end as claim, g.owed
    from ${OWED} g`
// Values: row id, worker id, lease token, lease seconds, mark started, max attempts. Exported for
// bench/claim-server-time.ts, which times the exact statement in the server.
export const CLAIM_NOTIFIED = `
  /* prepared outbox_claim_notified */
  select mailer.claim_notified($1::bigint, $2::text, $3::uuid, $4::float8, $5::boolean, $6::int)::text as claim`
// The same unless owed, as above; values as above, then MAIL_FROM's key and the hold (ms).
export const CLAIM_NOTIFIED_UNOWED = `
  /* prepared outbox_claim_notified_unowed */
  select case when g.owed then null
              else mailer.claim_notified($1::bigint, $2::text, $3::uuid, $4::float8, $5::boolean, $6::int)::text end as claim, g.owed
    from ${owedFrom('$7', '$8')} g`

/**
 * Claims up to `limit` due rows, in claim order (priority, send_at, id).
 * The statement is mailer.claim_batch (sql/0006_claim_by_priority.sql, sql/0017, its update since
 * sql/0019_claim_update_by_ctid.sql): for each priority with pending rows, SELECT … WHERE
 * priority = p AND send_at <= now() ORDER BY send_at, id LIMIT k FOR UPDATE SKIP LOCKED (a range
 * scan of email_outbox_claim_idx), then, if any were locked, an UPDATE of those rows by ctid with a
 * lease in database time. The priorities, and the next scheduled row a short claim reports, come
 * from one probe each of the same index. Plans pinned and cached per connection; the statement
 * itself is prepared per connection.
 * Without markStarted it runs through mailer.claim_unflushed (sql/0007), which commits without
 * waiting for the WAL flush: startSends, which runs before any of its rows is sent, commits
 * synchronously and so flushes the claim too. With markStarted the claim is that record itself.
 * Invariant: a row is `sending` only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
 */
export async function claimBatch(db: Kysely<Database>, p: ClaimParams): Promise<Claim> {
  if (p.limit <= 0) return { leases: [], nextDueInMs: null }
  // One token per claim: (id, token) is still unique per lease, since a row is claimed at most
  // once per statement, and it spares a random UUID per row.
  const token = crypto.randomUUID()
  if (p.pausedSender !== undefined) return claimPastPaused(db, p, p.pausedSender, token)
  if (p.notifiedId !== undefined) {
    // Taken only if due and first in claim order, so claim order holds. It reports no next due
    // row, nor need it: a row scheduled later came with news of its own, which sent its claim to
    // claim_batch (not due), or was there at the claim before, whose report stands.
    const guard = p.mailFromGuard
    const { rows } = await statementText<{ claim: string | null; owed?: boolean }>(
      db,
      guard ? CLAIM_NOTIFIED_UNOWED : CLAIM_NOTIFIED,
      [
        p.notifiedId,
        p.workerId,
        token,
        p.leaseSeconds,
        p.markStarted === true,
        p.defaultMaxAttempts,
        ...(guard ? [guard.key, guard.holdMs] : []),
      ],
    )
    if (rows[0]?.owed === true) return { leases: [], nextDueInMs: null, owed: true }
    const taken = parseClaim<LeaseTuple[]>(rows[0]?.claim, (c) => c)
    if (taken) return { leases: taken.map((r) => toLease(r, token)), nextDueInMs: null }
  }
  type Taken = { leases: LeaseTuple[]; nextDueMs: number | null }
  const guard = p.mailFromGuard
  const { rows } = await statementText<{ claim: string | null; owed?: boolean }>(
    db,
    guard
      ? p.markStarted === true
        ? CLAIM_STARTED_UNOWED
        : CLAIM_UNFLUSHED_UNOWED
      : p.markStarted === true
        ? CLAIM_STARTED
        : CLAIM_UNFLUSHED,
    [
      p.limit,
      p.workerId,
      token,
      p.leaseSeconds,
      p.defaultMaxAttempts,
      ...(guard ? [guard.key, guard.holdMs] : []),
    ],
  )
  if (rows[0]?.owed === true) return { leases: [], nextDueInMs: null, owed: true }
  const claim = parseClaim<Taken>(rows[0]?.claim, (c) => c.leases)
  const ms = claim?.nextDueMs ?? null
  return {
    leases: (claim?.leases ?? []).map((r) => toLease(r, token)),
    nextDueInMs: ms === null ? null : Math.max(0, ms),
  }
}

/**
 * Runs mailer.claim_notified for no row (id NULL, which `id = row_id` matches in no row; 0 took a
 * row written by hand with `overriding system value`: an identity from 1 does not keep 0 out) on
 * `session`, the LISTEN session that carries the worker's claims, as the first notified row's claim
 * would run there: a new backend compiles the function and plans its statements at their first
 * call, which that row's pickup otherwise waited for (its claim's round trip 2.8 ms cold, 1.5
 * primed, 1.3 warm on the benchmark's VM: bench/cold-claim.ts). It locks, claims and writes nothing.
 * Without mark_started, so that the one statement only that path runs is planned too.
 * `guarded`: the statement a worker that knows MAIL_FROM's pause key runs (mailFromGuard, sql/0062),
 * for a key no mailbox_pacing row has (NULL), so that it reads no pause and runs the claim.
 */
export async function primeNotifiedClaim(session: Queryable, guarded = false): Promise<void> {
  const values = [null, 'prime', crypto.randomUUID(), 1, false, 1]
  await (guarded
    ? session.query(CLAIM_NOTIFIED_UNOWED, [...values, null, 0])
    : session.query(CLAIM_NOTIFIED, values))
}
