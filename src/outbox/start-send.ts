// startSends: the last check before a send: cancel and expiry are honoured, and the send is recorded as started.
import type { Kysely } from 'kysely'
import type { Queryable } from '../db/queryable.ts'
import type { Database } from '../db/schema.ts'
import { statementText } from '../db/single-statement-db.ts'
import { type PauseLeftMs, pauseLeftMs } from './endless-pause.ts'
import { RATE_IN_FORCE } from './pacing-rate.ts'
import { pauseEnd } from './paused-now.ts'

export interface StartResult {
  started: Set<string>
  cancelled: Set<string>
  expired: Set<string>
  /**
   * Leases no longer held, or ended (past their expiry in database time, even if no reclaim took
   * them yet): never send these. A release fenced by the token hands back an ended one uncounted.
   */
  lost: Set<string>
  /**
   * Not started: their mailbox stands paused (a provider throttle) for these milliseconds (a pause
   * with no end: a recheck, pauseLeftMs).
   */
  paused: Map<string, PauseLeftMs>
  /**
   * With a mailbox read (pauseKey), a newer worker's MAILBOX_RATE_PER_MINUTE in force, this interval
   * (ms): none was started (each paused 0 ms), their sends take a pacing turn first; else null.
   */
  pacingMs: number | null
  /**
   * Not started: still live leases, but another transaction held the row locked (an application's
   * open UPDATE of it, anyone's SELECT … FOR UPDATE). Given back unsent, never waited for.
   */
  busy: Set<string>
}

// The check's two statements, written out: a Graph send's pickup waits for this one too, and an
// sql tag's nodes, compiled per call, cost it as they cost the claim (claim.ts, statementText).
// Values: ids, tokens, the request timeout (seconds) the sends run under, noted with their start
// as their deadline (sql/0078; null: none).
const START = `
  /* prepared outbox_start_sends */
  select id, started, cancelled, expired, busy
    from mailer.start_sends_with_deadline($1::bigint[], $2::uuid[], $3::float8)`
// Prepared like the plain check: planned per call, it cost the benchmark's binary → Graph drain
// more Postgres CPU per row than the pause read it replaced. A generic plan of its join on
// mailer.mailbox_pacing's key is re-made when autovacuum analyzes that table (an invalidation), so
// it follows the table's growth. Values: ids, tokens, each lease's mailbox (its pause key) or null,
// the request timeout as above.
// A pause holds the send as every reader of a pause counts one (pauseEnd, paused-now.ts): a
// throttle within a pacing turn (throttled_until, sql/0112), a pause set by hand past a paced
// mailbox's turn ('infinity', README) included; a pacing turn is no pause. A rate in force (the newest
// worker's, 'pacing rate' by primary key: pacing-rate.ts) starts none, each answered paused 0 ms
// with that interval, so that the gate takes a turn for it first. A mailbox whose probe is owed (a
// MAIL_FROM's pause over, owed-probe.ts) starts its probe (probe_id) alone: another row naming it,
// a worker's of another MAIL_FROM in a rolling deploy that changed it, is answered paused 1 ms,
// and the gate, reading the pause with the row (pg-send-gate.ts), sends it back.
const START_UNPAUSED = `
  /* prepared outbox_start_sends_unpaused */
  with rate as materialized (
    select ${RATE_IN_FORCE} as i
  ), ask as (
    select i.id, i.token,
           case when i.mailbox is not null and r.i > interval '0' then now()
                when e.ends > now() then e.ends
                when p.probe_owed and p.probe_id is distinct from i.id then now() end as paused_until,
           extract(epoch from r.i) * 1000 as paced_ms
      from unnest($1::bigint[], $2::uuid[], $3::text[]) as i(id, token, mailbox)
     cross join rate r
      left join mailer.mailbox_pacing p on p.mailbox = i.mailbox
     cross join lateral (select ${pauseEnd('p', 'r.i')} as ends) e
  )
  select s.id, s.started, s.cancelled, s.expired, s.busy, null::float8 as paused_ms, null::float8 as paced_ms
    from mailer.start_sends_with_deadline(array(select id from ask where paused_until is null),
                                          array(select token from ask where paused_until is null),
                                          $4::float8) s
  union all
  select id, false, false, false, false,
         case when paced_ms > 0 then 0 else greatest(1, mailer.ms_until(paused_until)) end::float8,
         nullif(paced_ms, 0)::float8
    from ask where paused_until is not null`

/**
 * Marks the given leases as sending-now unless cancelled or expired, in one statement:
 * mailer.start_sends_with_deadline (sql/0078: mailer.start_sends_unlocked of sql/0037, itself
 * mailer.start_sends of sql/0007, sql/0015, sql/0018, sql/0021, but waiting at most 50 ms for a row
 * lock, then skipping the rows another transaction holds as `busy`), its plan pinned and cached per
 * connection, the call prepared. A started row's send_deadline_at is its start plus
 * `timeoutSeconds`, this process's request timeout, in the same UPDATE: the lookup of an
 * interrupted send counts from the deadline of the process that sent (lookup-grace.ts), whatever
 * the registry says of the row's lease key by then. Row locks order
 * this against the API's cancel: exactly one of them sees the other's write; they are taken in id
 * order, as the cancel takes its own (sql/0021).
 * Fenced by (id, lease_token, status = 'sending') and a lease still live in database time, so no
 * reclaim can take a started send before its heartbeat; send_started_at is not indexed (HOT
 * update). A refused row keeps the mark of an interrupted earlier send: a worker that stops before
 * settling it leaves that evidence to the next claim.
 * Commits synchronously: it is the durable record that a send began, and it flushes the claim.
 * A lease with a `mailbox` (its pause key) is started only if that mailbox stands unpaused, read in
 * the same statement: without pacing the gate leaves the pause to this check, sparing a statement
 * per send, and a pause committed before the check is still honoured before the send.
 */
export async function startSends(
  db: Kysely<Database>,
  leases: readonly { id: string; token: string; mailbox?: string }[],
  timeoutSeconds: number | null = null,
): Promise<StartResult> {
  const result: StartResult = {
    started: new Set(),
    cancelled: new Set(),
    expired: new Set(),
    lost: new Set(),
    paused: new Map(),
    pacingMs: null,
    busy: new Set(),
  }
  if (leases.length === 0) return result
  type Row = {
    id: string
    started: boolean
    cancelled: boolean
    expired: boolean
    busy: boolean
    paused_ms?: number | null
    paced_ms?: number | null
  }
  const ids = leases.map((l) => l.id)
  const tokens = leases.map((l) => l.token)
  const { rows } = await (leases.some((l) => l.mailbox !== undefined)
    ? statementText<Row>(db, START_UNPAUSED, [
        ids,
        tokens,
        leases.map((l) => l.mailbox ?? null),
        timeoutSeconds,
      ])
    : statementText<Row>(db, START, [ids, tokens, timeoutSeconds]))
  for (const r of rows) {
    if (r.paced_ms != null) result.pacingMs = r.paced_ms
    if (r.paused_ms != null) result.paused.set(r.id, pauseLeftMs(r.paused_ms))
    else if (r.busy) result.busy.add(r.id)
    else if (r.started) result.started.add(r.id)
    else if (r.cancelled) result.cancelled.add(r.id)
    else result.expired.add(r.id)
  }
  for (const l of leases) {
    if (
      !result.started.has(l.id) &&
      !result.cancelled.has(l.id) &&
      !result.expired.has(l.id) &&
      !result.paused.has(l.id) &&
      !result.busy.has(l.id)
    ) {
      result.lost.add(l.id)
    }
  }
  return result
}

/**
 * The last check for a row that cannot exist (id 0), on `session`, as a send's would run there
 * (`withPause`: the mailbox's pause read with it, as without pacing): a new backend compiles
 * mailer.start_sends and plans its statement at the first call, which the first send after a
 * (re)connect otherwise waited for (1.5 ms on the benchmark's VM: bench/cold-pickup.ts). The call
 * is prepared on the session, as the send's then finds it. It locks, starts and writes nothing.
 */
export async function primeLastCheck(session: Queryable, withPause: boolean): Promise<void> {
  const none = [['0'], [crypto.randomUUID()]]
  await (withPause
    ? session.query(START_UNPAUSED, [...none, [null], null])
    : session.query(START, [...none, null]))
}
