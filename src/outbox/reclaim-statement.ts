// The reclaim's one statement: expired leases' rows updated as reclaim-decisions.ts decides, with their history, the next lease end, and the registry beat, expiry sweep and stale probes it carries.
import { type RawBuilder, sql } from 'kysely'
import { CANCELLED_LOOKUP_STOPPED } from './cancel-wins.ts'
import { earlierInterrupted } from './earlier-interrupted.ts'
import { type ExpirySweep, expirySweep } from './expiry-sweep.ts'
import { kindLit } from './history-kind.ts'
import { leaseOwnerName } from './lease-owner-name.ts'
import { lookedUpAttempt } from './looked-up-attempt.ts'
import {
  CANCEL_LOOKUP_STOPPED,
  LOOKUP_STOPPED,
  STOPPED_BEFORE_SENDING_AGAIN,
} from './lookup-stop.ts'
import { afterWords, EARLIER_SEND_MAY_HAVE_DELIVERED } from './may-have-delivered.ts'
import { OUTCOME_UNKNOWN } from './outcome-unknown.ts'
import { EXPIRED_LOOKUP_STOPPED, reclaimDecisions } from './reclaim-decisions.ts'
import { beatEntryKey, registryBeat } from './registry-beat.ts'
import { interruptedSendBefore } from './resent-unverified.ts'
import { type StaleProbes, staleProbeClear } from './stale-probes.ts'
import type { WorkerIdentity } from './worker-identity.ts'

/** The last_error of a row whose cancel was recorded while its worker, since stopped, held it before sending. */
const CANCELLED_STOPPED = 'cancelled before the send started (the worker holding the lease stopped)'
/** The last_error (and entry) of a reclaim whose worker stopped during the send: it may have reached Graph. */
const STOPPED_DURING_SEND = `the worker holding the lease stopped during the send${afterWords(OUTCOME_UNKNOWN)}`

export interface ReclaimParams {
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

/** A row of the statement's answer, by kind; the swept and beat rows reuse its columns. */
export interface ReclaimRow {
  id: string
  status: 'pending' | 'failed' | 'cancelled'
  ambiguous: boolean
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
  const d = reclaimDecisions(p)
  const beat = p.beat ? sql`, ${registryBeat(p.beat)}` : sql``
  const sweep = p.sweep ? sql`, ${expirySweep(p.sweep)}` : sql``
  const stale = p.staleProbes ? sql`, ${staleProbeClear(p.staleProbes)}` : sql``
  // The history entry's kind (history-kind.ts): the stop as last_error's case (below) words it,
  // branch for branch in its order, read on the version the same statement locks and updates.
  const stopKind = sql`case when ${d.cancelled} then ${kindLit('stopped_before_send')}
      when ${d.lookupsEnd} or ${d.expiredLookupEnds} then ${kindLit('unresolved')}
      when ${d.cancelLookup} or ${d.lookupStopped} then ${kindLit('stopped_looking_up')}
      when ${d.noSendStarted} then ${kindLit('stopped_before_resend')}
      when o.send_started_at is null then ${kindLit('stopped_before_send')}
      else ${kindLit('stopped_during_send')} end`
  // A row whose interrupted send is left to be looked up (lookups on, or a claim past its
  // attempts that only looked it up): pending, whatever its count.
  const leftToLookUp = sql<boolean>`((${d.pastAttempts} or ${d.lookups}) and o.send_started_at is not null
      and not (${d.pastAttempts} and ${d.stoppedBefore}))`
  const outOfAttempts = sql<boolean>`(o.attempts - ${d.lookupOnly}::int >= ${d.maxAttempts})`
  // A stop that fails the row out of attempts (or of its lookup's stops) names an earlier
  // interrupted send, as every other ending does: one its history holds unmarked
  // (earlier-interrupted.ts: retried after its hold), or, its worker stopped during a resend
  // (lookups off), the send that resend stood in for (interruptedSendBefore, as a lookup's failure
  // after such a stop reads it: resentOfLastSend). A lookup's stop names the send it looked up
  // already. Read only for such a failure, cancels and lookups decided before it.
  const held = earlierInterrupted(sql`o.id`, sql`o.last_error_code`)
  const namedIfFailing = (earlier: RawBuilder<boolean>) => sql<string>`case
      when ${outOfAttempts} and not ${leftToLookUp} and ${earlier}
      then ${sql.lit(afterWords(EARLIER_SEND_MAY_HAVE_DELIVERED))} else '' end`
  const earlierNamed = namedIfFailing(
    sql`(${held} or (o.send_started_at is not null and ${interruptedSendBefore(sql`o.id`)}))`,
  )
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
      select o.id, o.lease_owner, ${stopKind} as entry_kind from mailer.email_outbox o
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
         set status = case when ${d.cancelled} or ${d.lookupsEnd} then 'cancelled'
                           when ${d.cancelLookup} then 'pending'
                           when ${d.expiredLookupEnds} then 'failed'
                           when ${leftToLookUp} then 'pending'
                           when ${outOfAttempts} then 'failed'
                           else 'pending' end,
             attempts = case when ${d.cancelLookup} then o.attempts - 1
                             when ${d.pastAttempts} then ${d.maxAttempts}
                             else o.attempts - ${d.lookupOnly}::int end,
             last_error_code = case when ${d.cancelled} or ${d.lookupsEnd} then 'cancelled'
                                    when ${d.expiredLookupEnds} then 'expired' else 'lease_expired' end,
             -- An unmarked row whose history holds an interrupted send (earlier-interrupted.ts) names it.
             last_error = case when ${d.cancelled} and ${earlierInterrupted(sql`o.id`, sql`o.last_error_code`)}
                               then ${sql.lit(`${CANCELLED_STOPPED}${afterWords(EARLIER_SEND_MAY_HAVE_DELIVERED)}`)}
                               when ${d.cancelled} then ${sql.lit(CANCELLED_STOPPED)}
                               when ${d.lookupsEnd} then ${CANCELLED_LOOKUP_STOPPED}
                               when ${d.expiredLookupEnds} then ${EXPIRED_LOOKUP_STOPPED}
                               when ${d.cancelLookup} then ${CANCEL_LOOKUP_STOPPED}
                               when ${d.lookupStopped} then ${LOOKUP_STOPPED} || ${namedIfFailing(held)}
                               when ${d.noSendStarted} then ${STOPPED_BEFORE_SENDING_AGAIN}
                               when o.send_started_at is null
                               then 'the worker holding the lease stopped before sending' || ${earlierNamed}
                               else ${sql.lit(STOPPED_DURING_SEND)} || ${earlierNamed} end,
             lease_owner = null, lease_token = null, lease_expires_at = null
        from expired
       where o.id = expired.id
      returning o.id, o.status, o.send_started_at is not null as ambiguous,
                -- A lookup counted none: its entry numbers the attempt it looks up (or, after a
                -- counted claim that sent nothing, that claim's), as its settlement would (settle.ts).
                case when ${d.cancelLookup} or ${d.lookupOnly} then ${lookedUpAttempt(sql`o.id`, sql`o.attempts`)}
                     else o.attempts end as attempts,
                o.last_error_code, o.last_error, expired.lease_owner, expired.entry_kind, o.tenant,
                o.correlation_id
    ), history as (
      -- A lease key named by the worker id its registry entry holds (workers_lease_key_idx).
      insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error, kind)
      select id, attempts, ${leaseOwnerName('done.lease_owner')},
             case when status = 'cancelled' then 'cancelled'
                  when last_error_code = 'expired' then 'expired' else 'lease_expired' end,
             last_error_code, last_error, entry_kind
        from done
    )${beat}${sweep}${stale}
    select 'reclaimed' as kind, id, status, ambiguous, tenant, attempts as attempt,
           correlation_id, last_error_code as code, null::float8 as next_ms from done
    union all
    ${sweptRows}
    ${beatRow}
    ${staleRows}
    select 'next', null, null, null, null, null, null, null,
           (select extract(epoch from next_end - now()) * 1000 from in_flight)::float8`
}
