// reclaimExpired: crash recovery (rows whose lease ran out go back to pending, or fail when out of attempts), carrying the registry beat and the expiry sweep.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { CANCELLED_LOOKUP_STOPPED, cancelAwaitsLookup } from './cancel-wins.ts'
import { type ExpirySweep, expirySweep, type Swept } from './expiry-sweep.ts'
import { type BeatResult, beatEntryKey, registryBeat, type WorkerIdentity } from './heartbeat.ts'
import { leaseOwnerName } from './lease-owner-name.ts'
import { lookedUpAttempt } from './looked-up-attempt.ts'
import { CANCEL_LOOKUP_STOPPED, LOOKUP_STOPPED } from './lookup-stop.ts'
import { type StaleProbes, staleProbeClear } from './stale-probes.ts'

interface Reclaimed {
  id: string
  status: 'pending' | 'failed' | 'cancelled'
  /** The dead holder had started the send: the next attempt must resolve the ambiguity. */
  ambiguous: boolean
  /** Failed with code expired: a lookup past its expiresAt whose workers kept stopping. */
  expired?: true
}

interface ReclaimResult {
  rows: Reclaimed[]
  /**
   * Milliseconds (database time) until the earliest lease still running ends, or null when no row
   * is in flight: no lease taken after this statement can end sooner than LEASE_SECONDS from now,
   * so the next reclaim is due at the lesser of the two.
   */
  nextExpiryMs: number | null
  /** Pending rows past their expiresAt that the statement failed (with `sweep`), in id order. */
  swept: Swept[]
  /** With `beat`: what it met (the worker's entry's key after it). */
  beat?: BeatResult
  /** With `staleProbes`: how many owed probes it cleared (mailboxes no live worker sends from). */
  staleProbes?: number
}

/**
 * Returns expired `sending` rows to `pending` (or `failed` when attempts are exhausted), with history.
 * A row whose cancel was recorded (202) before its send started is cancelled here: its worker,
 * which was to cancel it, is gone, and out of attempts it would otherwise end failed, open to a
 * retry that sends what was cancelled. A row claimed only to look its interrupted send up, its
 * cancel requested (lease.ts: lookupOnly), gives its claim's count back and waits to be looked up
 * again, with lookups on and within LOOKUP_STOPS_IN_A_ROW; else it is cancelled, delivery unknown:
 * the cancel was asked for, and never ends `failed`. One claimed so past its expiresAt (as its
 * claim noted: sql/0162) gives its count back too, its entry numbered as the send it looks up, and
 * waits pending (to be looked up, or expired by a claim or the sweep); at LOOKUP_STOPS_IN_A_ROW
 * it fails expired naming that send. A lookup's stop names no send (lookup-stop.ts: the failure
 * read from the history after it names the send it looked up).
 * send_started_at is kept as the evidence that a send may have reached the provider.
 * Reads every in-flight row once (email_outbox_sending_idx), for both the expired ones and the next
 * end; SKIP LOCKED so concurrent reclaimers never wait.
 * Also reads when the next reclaim is due (the earliest end among the leases still running, from
 * the statement's snapshot: rows it reclaims, or another reclaimer holds, have ended and are left
 * out), with `beat`, upserts the worker's registry entry, with `sweep` fails pending rows past
 * their expiresAt (expiry-sweep.ts), and with `staleProbes` clears the probes owed for mailboxes no
 * live worker sends from (stale-probes.ts): an idle worker's one statement per lease length.
 */
export async function reclaimExpired(
  db: Kysely<Database>,
  p: ReclaimParams,
): Promise<ReclaimResult> {
  const sent = p.beat?.leaseKey ?? null
  const { rows } = await reclaimStatement(p).execute(db)
  // The one row of kind 'next' carries the next end; the one of kind 'beat', the entry's key.
  const beat = rows.find((r) => r.kind === 'beat')
  return {
    ...(beat ? { beat: { sent, entry: (beat.status as string | null) ?? null } } : {}),
    rows: rows
      .filter((r) => r.kind === 'reclaimed')
      .map(({ id, status, ambiguous, code }) => ({
        id,
        status,
        ambiguous,
        ...(code === 'expired' && { expired: true as const }),
      })),
    nextExpiryMs: rows.find((r) => r.kind === 'next')?.next_ms ?? null,
    ...(p.staleProbes ? { staleProbes: rows.filter((r) => r.kind === 'stale').length } : {}),
    swept: rows
      .filter((r) => r.kind === 'swept')
      .map((r) => ({
        id: r.id,
        status: r.status === 'cancelled' ? ('cancelled' as const) : ('failed' as const),
        tenant: r.tenant ?? '',
        attempt: r.attempt ?? 0,
        correlationId: r.correlation_id,
      }))
      .sort((a, b) => Number(BigInt(a.id) - BigInt(b.id))),
  }
}

/**
 * The last_error of a row past its expiresAt whose interrupted send's lookup lost its worker
 * LOOKUP_STOPS_IN_A_ROW times: the words of any such row ended unlooked (settle.ts, expiry-sweep.ts).
 */
const EXPIRED_LOOKUP_STOPPED = sql.lit(
  'expiresAt passed; an interrupted send may have delivered it (the worker looking it up stopped)',
)

/** Stops in a row of the workers looking a row's interrupted send up past its attempts or its expiresAt (its send's own included) before the row fails. */
const LOOKUP_STOPS_IN_A_ROW = 3

interface ReclaimParams {
  defaultMaxAttempts: number
  /**
   * Mailbox lookups are on: a row out of attempts whose worker stopped during its send is left to
   * be looked up (a claim past its attempts: Lease.pastAttempts), not failed.
   */
  lookups?: boolean
  limit?: number
  /**
   * The reclaiming worker's own leases whose outcome its settlement is recording: left to that
   * settlement (each fenced by its token), however long their database was away. Reclaimed, a send
   * the provider had accepted became an interrupted one: held as ambiguous_send (policy hold, no
   * lookup) or sent again, by the very worker that knew it was sent.
   */
  keep?: readonly { id: string; token: string }[]
  beat?: WorkerIdentity
  sweep?: ExpirySweep
  staleProbes?: StaleProbes
}

type ReclaimRow = Reclaimed & {
  kind: 'reclaimed' | 'swept' | 'next' | 'beat' | 'stale'
  tenant: string | null
  attempt: number | null
  correlation_id: string | null
  /** A reclaimed row's last_error_code. */
  code: string | null
  next_ms: number | null
}

/** reclaimExpired's one statement, unexecuted (bench/expiry-sweep.ts explains it). */
export function reclaimStatement(p: ReclaimParams) {
  // Read on the locked row version the UPDATE writes.
  const cancelled = sql<boolean>`(o.cancel_requested_at is not null and o.send_started_at is null)`
  const maxAttempts = sql`coalesce(o.max_attempts, ${p.defaultMaxAttempts})`
  const pastAttempts = sql<boolean>`(o.attempts > ${maxAttempts})`
  const lookups = sql<boolean>`${p.lookups === true}::boolean`
  // A lookup's worker that stops leaves the row to be looked up again, but not without end: a
  // crash loop ends failed after LOOKUP_STOPS_IN_A_ROW stops with no other outcome between them
  // (uncounted waits aside), as a counted one does at max_attempts. History's primary key
  // (outbox_id, id); read for a lease past its attempts, or a cancel's lookup, only.
  // A claim of a pending row whose cancel was requested with an interrupted send's mark.
  const cancelLookup = cancelAwaitsLookup
  const stoppedBefore = sql<boolean>`((select count(*) from mailer.email_attempts h
      where h.outbox_id = o.id and h.outcome = 'lease_expired'
        and h.id > coalesce((select max(b.id) from mailer.email_attempts b where b.outbox_id = o.id
                               and b.outcome not in ('lease_expired', 'throttled', 'released')), 0))
      >= ${LOOKUP_STOPS_IN_A_ROW - 1})`
  // Its lookups end: cancelled, its mark kept (read for a cancel's lookup only).
  const lookupsEnd = sql<boolean>`(${cancelLookup} and not (${lookups} and not ${stoppedBefore}))`
  // The claim only looked the row's interrupted send up (lease.ts lookupOnly), as it noted
  // (sql/0162): it counted none. Past the max_attempts and for a cancel's lookup the row says so as
  // well (above); past the expiresAt only the claim could, since a counted claim taken before it
  // whose send started leaves the same row. NULL (a lease taken before 0162): judged as above.
  const lookupOnly = sql<boolean>`coalesce(o.lease_lookup_only, false)`
  // A lookup past the expiresAt whose workers keep stopping: ended as its claim would end it past
  // its bound (settle.ts), expired naming the send; its count no longer bounds the stops. One past
  // its max_attempts as well ends so too: its expiresAt comes first, for its settlement
  // (lease-outcome.ts) and the sweep alike. Past its max_attempts only, it fails out of them (below).
  const expiredLookupEnds = sql<boolean>`(${lookupOnly} and not ${cancelLookup} and ${stoppedBefore}
      and (not ${pastAttempts} or coalesce(o.expires_at <= now(), false)))`
  // Such a claim, or with lookups on any claim of a row with an interrupted send (which looks it up
  // before it sends again), under which no send started: the row's mark is still that send's, which
  // its history entry (a retry, a stop, a 504 given back) followed; a send's start is noted anew
  // (start_sends). Named a lookup's stop, not a send's (lookup-stop.ts); a counted claim's stays
  // counted. A machine of a release before lookups past the max_attempts (5594ced9) claims a row
  // past them as any interrupted send and, not found, sends it again: the claim notes it
  // lookup-only all the same, and that send, its start later than every entry, is named a send.
  // Read on a marked row's lease only (the history's primary key, outbox_id, id); no entry: a send.
  const sentNothing = sql<boolean>`((${lookupOnly} or ${lookups}) and o.send_started_at <= (
      select max(h.finished_at) from mailer.email_attempts h where h.outbox_id = o.id))`
  const beat = p.beat ? sql`, ${registryBeat(p.beat)}` : sql``
  const sweep = p.sweep ? sql`, ${expirySweep(p.sweep)}` : sql``
  const stale = p.staleProbes ? sql`, ${staleProbeClear(p.staleProbes)}` : sql``
  const keep = p.keep?.length
    ? sql`and (o.id, o.lease_token) not in (select * from unnest(${p.keep.map((l) => l.id)}::bigint[], ${p.keep.map((l) => l.token)}::uuid[]))`
    : sql``
  // The entry's key in `status`, as the swept rows reuse columns.
  const beatRow = p.beat
    ? sql`select 'beat', null, lease_key, null, null, null, null, null, null from (${beatEntryKey}) b
          union all`
    : sql``
  const sweptRows = p.sweep
    ? sql`select 'swept', id, status, false, tenant, attempts, correlation_id, null, null from swept
          union all`
    : sql``
  const staleRows = p.staleProbes
    ? sql`select 'stale', null, null, null, null, null, null, null, null from stale_probes
          union all`
    : sql``
  return sql<ReclaimRow>`
    with in_flight as materialized (
      -- Every lease's end, read once, in one pass (email_outbox_sending_idx: in-flight rows only;
      -- lease_expires_at is in no index, so the heartbeat's update stays HOT): the expired ids to
      -- lock, and the next end.
      select array_agg(id) filter (where lease_expires_at < now()) as expired_ids,
             min(lease_expires_at) filter (where lease_expires_at >= now()) as next_end
        from mailer.email_outbox where status = 'sending'
    ), expired as (
      -- The lease's holder, read before the update clears it: the history names the worker that stopped.
      -- Reached by id; the conditions are checked again on the locked latest version.
      select o.id, o.lease_owner from mailer.email_outbox o
       where o.id = any((select expired_ids from in_flight)::bigint[])
         and o.status = 'sending' and o.lease_expires_at < now() ${keep}
       order by o.id
       limit ${p.limit ?? 1000}
       for update of o skip locked
    ), done as (
      -- A claim past the row's attempts with an interrupted send marked only looks that send up
      -- (Lease.pastAttempts): it counted none, and its row waits to be looked up again. With
      -- lookups on, so does a row whose last attempt's send the stop interrupted. So does a claim
      -- of a row whose cancel was requested (cancelLookup), cancelled, never failed, once it may not.
      update mailer.email_outbox o
         set status = case when ${cancelled} or ${lookupsEnd} then 'cancelled'
                           when ${cancelLookup} then 'pending'
                           when ${expiredLookupEnds} then 'failed'
                           when (${pastAttempts} or ${lookups}) and o.send_started_at is not null
                                and not (${pastAttempts} and ${stoppedBefore}) then 'pending'
                           when o.attempts - ${lookupOnly}::int >= ${maxAttempts} then 'failed'
                           else 'pending' end,
             attempts = case when ${cancelLookup} then o.attempts - 1
                             when ${pastAttempts} then ${maxAttempts}
                             else o.attempts - ${lookupOnly}::int end,
             last_error_code = case when ${cancelled} or ${lookupsEnd} then 'cancelled'
                                    when ${expiredLookupEnds} then 'expired' else 'lease_expired' end,
             last_error = case when ${cancelled}
                               then 'cancelled before the send started (the worker holding the lease stopped)'
                               when ${lookupsEnd} then ${CANCELLED_LOOKUP_STOPPED}
                               when ${expiredLookupEnds} then ${EXPIRED_LOOKUP_STOPPED}
                               when ${cancelLookup} then ${CANCEL_LOOKUP_STOPPED}
                               when ${sentNothing} then ${LOOKUP_STOPPED}
                               when o.send_started_at is null
                               then 'the worker holding the lease stopped before sending'
                               else 'the worker holding the lease stopped during the send; outcome unknown' end,
             lease_owner = null, lease_token = null, lease_expires_at = null
        from expired
       where o.id = expired.id
      returning o.id, o.status, o.send_started_at is not null as ambiguous,
                -- A lookup counted none: its entry numbers the attempt it looks up, as its
                -- settlement would (settle.ts).
                case when ${cancelLookup} or ${lookupOnly} then ${lookedUpAttempt(sql`o.id`, sql`o.attempts`)}
                     else o.attempts end as attempts,
                o.last_error_code, o.last_error, expired.lease_owner
    ), history as (
      -- A lease key named by the worker id its registry entry holds (workers_lease_key_idx).
      insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error)
      select id, attempts, ${leaseOwnerName('done.lease_owner')},
             case when status = 'cancelled' then 'cancelled'
                  when last_error_code = 'expired' then 'expired' else 'lease_expired' end,
             last_error_code, last_error
        from done
    )${beat}${sweep}${stale}
    select 'reclaimed' as kind, id, status, ambiguous, null::text as tenant, null::int as attempt,
           null::text as correlation_id, last_error_code as code, null::float8 as next_ms from done
    union all
    ${sweptRows}
    ${beatRow}
    ${staleRows}
    select 'next', null, null, null, null, null, null, null,
           (select extract(epoch from next_end - now()) * 1000 from in_flight)::float8`
}
