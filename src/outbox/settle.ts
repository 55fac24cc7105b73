// settleLeases: records the outcomes of a batch of leases and their attempt history in one statement.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { CANCELLED_BEFORE_SEND, CANCELLED_UNRESOLVED, cancelRecorded } from './cancel-wins.ts'
import { expiredUnresolved } from './expired-unresolved.ts'
import { kindLit } from './history-kind.ts'
import { lookedUpAttempt } from './looked-up-attempt.ts'
import { LOOKUP_TOO_EARLY_CODE, lookupPastExpirySeconds } from './lookup-grace.ts'
import { endsASend } from './lookup-stop.ts'
import {
  EARLIER_MAY_HAVE_DELIVERED,
  lastSendMayHaveDelivered,
  resentOfLastSend,
  withoutResentNamed,
} from './resent-unverified.ts'
import {
  BUSY_OUTCOME,
  PACED_CODE,
  PAUSED_CODE,
  type SettledRow,
  type SettleItem,
  type Settlement,
  TOKEN_WAIT_CODE,
} from './settle-item.ts'
import { type Fit, writingStorable } from './storable-in-encoding.ts'

const NOT_SENT_BEFORE_EXPIRY = 'not sent before expiresAt'
/**
 * The suffix of an out-of-attempts error whose last attempt's send left it ambiguous: that send's,
 * or, resent unverified (Settlement resentUnverified), the earlier interrupted send's, and this
 * one's too when it may also have reached the provider. A retry of such a resend ends with it too.
 */
const LAST_SEND_MAY_HAVE_DELIVERED = lastSendMayHaveDelivered(sql`i.resent`)
/** The suffix of a refused unverified resend's failure (Settlement failed, resentUnverified). */
const EARLIER = sql.lit(EARLIER_MAY_HAVE_DELIVERED)
/** As LAST_SEND_MAY_HAVE_DELIVERED, of a row out of attempts after its lookup: its last send read from its history. */
const LOOKED_UP_MAY_HAVE_DELIVERED = lastSendMayHaveDelivered(resentOfLastSend)
/** The suffix of a throttle's ending error on a row an interrupted send may have delivered. */
const INTERRUPTED_MAY_HAVE_DELIVERED = sql`case when i.ambiguous
  then '; an interrupted send may have delivered it' else '' end`
/**
 * How long before its expiresAt a row waits to look its interrupted send up (lookUpFirst): a row is
 * due before it expires (email_outbox_expiry_check), and woken at the expiresAt its claim finds it
 * expired, so only looks that send up.
 */
const BEFORE_EXPIRY = sql`interval '1 millisecond'`

/**
 * The last counted attempt's error (`column`) of a lease past its attempts: the interrupted send's
 * (its retry, its worker's stop: a reclaim's lease_expired, or a gateway's 504 given back before a
 * claim whose worker stopped before it sent again), which the waits to look it up since (uncounted,
 * `throttled`) and the stops of its lookups' workers (endsASend) replaced on the row.
 * From the history's primary key (outbox_id, id); read for such a lease's failure only.
 */
const exhaustedError = (column: 'error_code' | 'error') =>
  sql`(select h.${sql.raw(column)} from mailer.email_attempts h
        where h.outbox_id = i.id and ${endsASend('h')} order by h.id desc limit 1)`

interface SettleParams {
  workerId: string
  defaultMaxAttempts: number
  throttleDeadlineSeconds: number
  /**
   * How long past its expiresAt a wait to look an interrupted send up (Settlement lookupWait) may
   * run: lookupPastExpirySeconds of the worker's lookup grace (lookup-grace.ts); by default
   * LOOKUP_GRACE_SECONDS's.
   */
  lookupPastExpirySeconds?: number
}

/**
 * Since when the row has waited uncounted (throttled, a refused credential, a lookup asked again):
 * the first such attempt after its last other outcome, or now for a first one. The throttle
 * deadline counts from there: from creation, a row scheduled days ahead or retried through the API
 * failed at its first throttle. A failure ends a run, so a retried row starts a new one.
 * A wait for the mailbox's pacing turn (MAILBOX_RATE_PER_MINUTE, code PACED_CODE) is our own
 * schedule, not a throttle: it has no deadline (null here), neither starts a run nor ends one, and
 * a backlog longer than the deadline at the configured rate never fails its rows.
 * Read only for an uncounted retry, from the history's primary key (outbox_id, id), in id order.
 */
const throttledSince = sql`case when i.refund and i.kind = 'retry' and i.code is distinct from ${PACED_CODE}
    then coalesce(
      (select min(a.finished_at) from mailer.email_attempts a
        where a.outbox_id = i.id and a.outcome = 'throttled'
          and a.error_code is distinct from ${PACED_CODE}
          and a.id > coalesce((select max(b.id) from mailer.email_attempts b
                                where b.outbox_id = i.id and b.outcome not in ('throttled', 'released')), 0)),
      now()) end`

/**
 * A lease claimed past its expiresAt whose wait to look up may not run on (its bound passed): it
 * ends as a sweep past that bound ends the row (expiry-sweep.ts), counting no attempt either
 * (lookupOnly, `past`).
 */
const boundPassed = sql`(i.past_expiry and i.kind = 'retry' and l.verdict = 'expired')`

/**
 * The kind of a settled lease's history entry (history-kind.ts), by the branch of last_error
 * (below) that words it: read on the locked row `l` (its verdict; `unstarted`, the row's send start
 * before this statement) and the input `i`. A retry of an unverified resend names which sends may
 * have delivered the row; an ending that keeps an interrupted send unresolved (its mark) says so;
 * every other entry is an attempt's (a sent one's implied).
 */
const entryKind = sql`case l.verdict
    when 'retry' then case i.resent when 'both' then ${kindLit('resent_interrupted')}
                                    when 'earlier' then ${kindLit('resent')}
                                    else ${kindLit('attempt')} end
    when 'expired' then case
      when ${boundPassed} then ${kindLit('unresolved')}
      when i.kind = 'retry' and i.code = ${LOOKUP_TOO_EARLY_CODE} then ${kindLit('unresolved')}
      when i.kind = 'retry' and i.refund
      then case when i.ambiguous then ${kindLit('unresolved')} else ${kindLit('attempt')} end
      when i.kind = 'expired' and i.message is not null then ${kindLit('attempt')}
      when not i.ambiguous and (i.kind <> 'expired' or l.unstarted) then ${kindLit('attempt')}
      else ${kindLit('unresolved')} end
    -- A sent entry's is implied (history-kind.ts kindOf): not stored.
    when 'sent' then null
    when 'released' then ${kindLit('attempt')}
    -- Failed (a refused resend names the earlier send; a row no longer rendering, a lookup's 404),
    -- out of attempts, throttled out, cancelled: the mark kept, that send is named unresolved.
    else case when i.ambiguous then ${kindLit('unresolved')} else ${kindLit('attempt')} end end`

/**
 * Applies outcomes; returns the rows actually settled, and as BUSY_OUTCOME those another
 * transaction held locked (not settled: asked again). A lease missing from the result was lost:
 * the caller logs it and never treats it as success.
 * Fenced by (id, lease_token, status = 'sending'); uses the primary key only; locks the rows it can
 * at once, in id order, before it writes them, and waits for none (SKIP LOCKED): one row another
 * transaction held kept the whole batch waiting, past statement_timeout.
 */
export async function settleLeases(
  db: Kysely<Database>,
  items: readonly SettleItem[],
  p: SettleParams,
): Promise<SettledRow[]> {
  if (items.length === 0) return []
  const col = <T>(f: (i: SettleItem, s: Settlement) => T) => items.map((i) => f(i, i.settlement))
  // Judged where the rows are locked (locked, below), once a row.
  // A lease past its attempts (Lease.pastAttempts) only looks its interrupted send up: its waits
  // to look again are never out of attempts. With lookups on, an interrupted send on the last
  // attempt is looked up before the row fails (lookUpFirst): the row waits, its attempts spent,
  // and its next claim is such a lease, which gives its count back (below).
  // A wait to look an interrupted send up may run past the row's expiresAt, up to its bound: only
  // looked up there, never sent (email_outbox_expiry_check lets a row with the mark be due so, sql/0160).
  const judged = sql`mailer.settle_verdict(i.kind, i.refund, i.delay_ms, ts.since,
    case when i.lookup_wait then o.expires_at + make_interval(secs => ${p.lookupPastExpirySeconds ?? lookupPastExpirySeconds()}::float8)
         else o.expires_at end,
    case when i.past then 0 else o.attempts - i.refund::int end,
    coalesce(o.max_attempts, ${p.defaultMaxAttempts}), ${p.throttleDeadlineSeconds})`
  // A recorded cancel wins (cancel-wins.ts) over whatever the worker met, unless the mail went.
  // Cancelled so, the attempt counts, as a cancel its last check or its reclaim finds: the history
  // entry numbers the row's attempts. A lease that only looks an interrupted send up (lease.ts:
  // lookupOnly, `past` here) counted none: its count is given back whatever its verdict.
  // A row whose cancel was requested while it waited with an interrupted send is let through to
  // look that send up (cancelled-interrupted.ts): a wait to look again (`look_again`) keeps it
  // pending while it may wait (its verdict a retry, or a release), cancelled once it may not.
  // Of the locked row (j, below), which carries the verdict function's answer once.
  const cancelling = sql`(j.cancel_recorded and j.kind <> 'sent'
    and not (j.look_again and j.judged in ('retry', 'released')))`
  // An interrupted send (lookUpFirst) whose next try would come after the row's expiresAt is not
  // failed expired there (a message Graph took would read not sent): the row waits, due by its
  // expiresAt at the latest, for a claim past that expiresAt, which only looks the send up
  // (expired-interrupted.ts).
  const lookupAtExpiry = sql`(j.look_first and j.judged = 'expired' and not ${cancelling})`
  // A wait to look up that may not run on, ending past the expiresAt, ends expired (never
  // throttled out nor exhausted: a row not sent by its expiresAt fails so).
  const verdict = sql`case when ${cancelling} then 'cancelled'
    when j.look_first and j.judged in ('exhausted', 'expired') then 'retry'
    when j.lookup_wait and j.judged <> 'retry' and j.retry_at >= j.expires_at then 'expired'
    else j.judged end`
  // The provider's texts as the database's encoding can hold them (storable-in-encoding.ts).
  const { rows } = await writingStorable(db, (storable: Fit) =>
    sql<SettledRow & { due_ms: number | null; attempt: number | null }>`
    with input as (
      select * from unnest(
        ${col((i) => i.id)}::bigint[], ${col((i) => i.token)}::uuid[], ${col((_, s) => s.kind)}::text[],
        ${col((_, s) => ('code' in s ? storable(s.code) : null))}::text[],
        ${col((_, s) => ('message' in s && s.message !== undefined ? storable(s.message) : s.kind === 'expired' && s.notSent ? NOT_SENT_BEFORE_EXPIRY : null))}::text[],
        ${col((_, s) => (s.kind === 'retry' ? s.delayMs : 0))}::float8[],
        ${col((_, s) => s.kind === 'released' || (s.kind === 'retry' && s.throttled))}::bool[],
        ${col((i, s) => (s.kind === 'retry' || s.kind === 'failed' || s.kind === 'cancelled' ? s.ambiguous === true : s.kind === 'expired' || s.kind === 'exhausted' ? s.notSent !== true && i.ambiguous === true : s.kind === 'released' && i.ambiguous === true))}::bool[],
        ${col((i) => i.startedAt?.getTime() ?? null)}::float8[], ${col((i) => i.httpStatus ?? null)}::int[],
        ${col((i) => (i.requestId == null ? null : storable(i.requestId)))}::text[],
        ${col((i) => i.uncounted === true)}::bool[],
        ${col((_, s) => s.kind === 'retry' && s.lookUpFirst === true)}::bool[],
        ${col((i, s) => i.cancelRequested === true && i.ambiguous === true && (s.kind === 'released' || (s.kind === 'retry' && s.throttled)))}::bool[],
        ${col((_, s) => s.kind === 'retry' && s.lookupWait === true)}::bool[],
        ${col((i) => i.pastExpiry === true)}::bool[],
        ${col((_, s) => (s.kind === 'retry' && s.resentUnverified ? (s.resentUnverified.sendAmbiguous ? 'both' : 'earlier') : s.kind === 'failed' && s.resentUnverified ? 'earlier' : null))}::text[]
      ) as t(id, token, kind, code, message, delay_ms, refund, ambiguous, started_ms, http_status, request_id, past, look_first, look_again, lookup_wait, past_expiry, resent)
    ), locked as materialized (
      -- Locked first, in id order, as the API's bulk cancel and retry lock theirs: a batch in the
      -- order its sends finished deadlocked with a bulk action over the same rows. A row another
      -- transaction holds is skipped (held, below), not waited for.
      -- The verdict is judged here, once a row, on the version the lock takes (the latest, the
      -- fence re-checked on it), which the update below writes: the lock keeps a concurrent
      -- reclaim from slipping in between deciding and writing.
      -- The verdict function runs once a row, in the locking subquery j (never pulled up, as it
      -- locks): the select list reads its answer, not copies of its call.
      -- retry_at: a retry's due time (now() plus its delay), which the verdict reads and send_at takes.
      select j.id, ${verdict} as verdict, ${cancelling} as cancelling, ${lookupAtExpiry} as at_expiry,
             j.retry_at, j.unstarted
        from (select o.id, ${judged} as judged, ${cancelRecorded} as cancel_recorded,
                     i.kind, i.look_first, i.look_again, i.lookup_wait, o.expires_at,
                     o.send_started_at is null as unstarted,
                     now() + make_interval(secs => i.delay_ms / 1000) as retry_at
                from mailer.email_outbox o join input i on o.id = i.id and o.lease_token = i.token
                     cross join lateral (select ${throttledSince} as since) ts
               where o.status = 'sending'
               order by o.id
                 for update of o skip locked) j
    ), held as (
      -- The caller's leases when the statement began: those not locked above are busy, not lost.
      select o.id from mailer.email_outbox o join input i on o.id = i.id and o.lease_token = i.token
       where o.status = 'sending'
    ), done as (
      update mailer.email_outbox o
         set status = case l.verdict when 'sent' then 'sent' when 'cancelled' then 'cancelled'
                                      when 'retry' then 'pending' when 'released' then 'pending' else 'failed' end,
             attempts = o.attempts - ((i.refund and not l.cancelling) or i.past)::int,
             send_at = case when l.verdict <> 'retry' then o.send_at
                            when l.at_expiry then o.expires_at - ${BEFORE_EXPIRY}
                            else l.retry_at end,
             sent_at = case when i.kind = 'sent' then now() end,
             last_error_code = case l.verdict
               when 'sent' then null when 'released' then o.last_error_code
               when 'expired' then 'expired' when 'cancelled' then 'cancelled'
               when 'throttled_out' then 'throttled'
               -- A lease past its attempts: its last attempt's code (exhaustedError).
               when 'exhausted' then coalesce(i.code, ${exhaustedError('error_code')}, o.last_error_code)
               else i.code end,
             last_error = case l.verdict
               when 'sent' then null when 'released' then o.last_error
               -- The mark is an earlier send's only on a row found expired before its send started
               -- (the last check that finds it so keeps it, sql/0018, and the lease knows); after a
               -- send, it is that send's own start, and a send answered for sure (a 500) delivered nothing.
               -- A wait given back uncounted (a throttle) that its expiresAt ended names what held
               -- the row back, as one ended by THROTTLE_DEADLINE_SECONDS does.
               when 'expired' then case
                 -- Claimed past it, its lookup held back past the bound (lookupWait): as any
                 -- interrupted send found past its expiresAt and not looked up.
                 when ${boundPassed} then ${expiredUnresolved()}
                 -- A wait to look an interrupted send up again that would end past its bound (the
                 -- row is never sent past its expiresAt): no throttle, and no lookup to come.
                 when i.kind = 'retry' and i.code = ${LOOKUP_TOO_EARLY_CODE}
                 then 'expiresAt comes before its interrupted send can be looked up again (not in the mailbox yet); that send may have delivered it'
                 when i.kind = 'retry' and i.refund
                 then 'still throttled at its expiresAt: ' || coalesce(i.message, '') || ${INTERRUPTED_MAY_HAVE_DELIVERED}
                 -- Its interrupted send looked up and not found (expired-interrupted.ts).
                 when i.kind = 'expired' and i.message is not null then i.message
                 when not i.ambiguous and (i.kind <> 'expired' or o.send_started_at is null)
                 then ${NOT_SENT_BEFORE_EXPIRY}
                 else ${expiredUnresolved()} end
               -- Its own word (cancelled-interrupted.ts); an interrupted send left unresolved is named.
               when 'cancelled' then case when i.kind = 'cancelled' and i.message is not null then i.message
                                          when i.ambiguous then ${CANCELLED_UNRESOLVED}
                                          else ${CANCELLED_BEFORE_SEND} end
               when 'throttled_out' then 'still throttled at the throttle deadline: ' || coalesce(i.message, '')
                                         || ${INTERRUPTED_MAY_HAVE_DELIVERED}
               -- An interrupted last send is named alike whether it went unlooked (lookups off) or
               -- its lookup could not tell.
               when 'exhausted' then 'attempts exhausted; last error: ' || case
                 when i.kind <> 'exhausted' then coalesce(i.message, '') || case when i.ambiguous then ${LAST_SEND_MAY_HAVE_DELIVERED} else '' end
                 when i.ambiguous then coalesce(${withoutResentNamed(exhaustedError('error'))}, '') || ${LOOKED_UP_MAY_HAVE_DELIVERED}
                 else coalesce(${withoutResentNamed(exhaustedError('error'))}, '') || ' (that send was looked up and not found: not sent)' end
               -- A retry of an unverified resend names the send that may have delivered it, as its
               -- failure would: read back (resentOfLastSend) once a lookup after it cannot tell.
               when 'retry' then i.message || case when i.resent is not null then ${LAST_SEND_MAY_HAVE_DELIVERED} else '' end
               -- A refused unverified resend (Settlement resentUnverified) names the earlier send.
               when 'failed' then i.message || case when i.kind = 'failed' and i.resent = 'earlier'
                                                    then ${EARLIER} else '' end
               else i.message end,
             lease_owner = null, lease_token = null, lease_expires_at = null,
             -- The mark of a send that may have reached the provider survives until it is resolved,
             -- also on a row that fails now (out of attempts, throttled out, its lookup refused, or
             -- expiring: a retry that would come after its expiresAt fails before it passes):
             -- retried through the API, it is looked up in the mailbox (or held) before it is sent again.
             send_started_at = case when l.verdict in ('retry', 'released', 'exhausted', 'throttled_out', 'failed', 'expired', 'cancelled')
                                         and i.ambiguous
                                    then coalesce(o.send_started_at, now()) end,
             -- Kept with the start it was noted with (sql/0078), else cleared with it.
             send_deadline_at = case when i.ambiguous and o.send_started_at is not null
                                          and l.verdict in ('retry', 'released', 'exhausted', 'throttled_out', 'failed', 'expired', 'cancelled')
                                     then o.send_deadline_at end
        from input i join locked l on l.id = i.id
       where o.id = l.id and o.lease_token = i.token and o.status = 'sending'
      returning o.id, o.status, o.attempts, o.last_error_code, o.last_error, i.kind,
                -- A lookup at the expiresAt is woken at it (the claim finds the row expired).
                case when l.at_expiry and o.status = 'pending'
                     then greatest(0, mailer.ms_until(o.expires_at))::float8 end as due_ms,
                -- The history numbers a wait given back uncounted as the attempt it gave back, and a
                -- lease that only looks a send up as the attempt it looks up or, after a counted
                -- claim that sent nothing, as that claim (looked-up-attempt.ts).
                case when i.past then ${lookedUpAttempt(sql`o.id`, sql`o.attempts`)}
                     else o.attempts + (i.refund and o.status <> 'cancelled')::int end as attempt,
                i.started_ms, i.http_status, i.request_id,
                case when i.kind = 'sent' then i.message end as sent_note, ${entryKind} as entry_kind,
                case when o.status = 'cancelled' then 'cancelled' when i.kind = 'exhausted' then 'failed'
                     when i.kind <> 'retry' then i.kind
                     when o.status = 'pending' then case when i.refund then 'throttled' else 'retry' end
                     when o.last_error_code = 'expired' then 'expired'
                     else 'failed' end as outcome
    ), history as (
      -- A row given back for its pacing turn again, with nothing else in between, is recorded
      -- once: a backlog's rows may each go back more than once, and its give-backs are no attempts.
      -- So is a row given back unsent for its mailbox's pause again (a refused MAIL_FROM pauses it
      -- 5 minutes at a time, for up to THROTTLE_DEADLINE_SECONDS: its whole backlog went back, and
      -- was recorded, once per pause).
      -- So is a row that waits for a token again (an Entra outage meets it once per backoff, for
      -- up to THROTTLE_DEADLINE_SECONDS): the run's first wait keeps its time and code, which the
      -- throttle deadline counts from; the row's columns say what held it last and when it is due.
      -- The row's latest entry, from the history's primary key (outbox_id, id), read for those only.
      insert into mailer.email_attempts
             (outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id, error_code, error, kind)
      select id, attempt, ${p.workerId}, to_timestamp(started_ms / 1000), outcome,
             http_status, request_id, last_error_code, coalesce(last_error, sent_note), entry_kind
        from done
       where case when outcome <> 'throttled' then true
                  when last_error_code = ${PACED_CODE}
                  then (select h.error_code from mailer.email_attempts h
                         where h.outbox_id = done.id order by h.id desc limit 1)
                       is distinct from ${PACED_CODE}
                  when last_error_code = ${PAUSED_CODE}
                  then (select h.error_code from mailer.email_attempts h
                         where h.outbox_id = done.id order by h.id desc limit 1)
                       is distinct from ${PAUSED_CODE}
                  when last_error_code ~ ${TOKEN_WAIT_CODE}
                  then not coalesce((select h.outcome = 'throttled' and h.error_code ~ ${TOKEN_WAIT_CODE}
                                       from mailer.email_attempts h
                                      where h.outbox_id = done.id order by h.id desc limit 1), false)
                  else true end
    )
    select id, status, outcome, last_error_code as code, due_ms, attempt from done
    union all
    select id, 'sending', ${BUSY_OUTCOME}::text, null::text, null::float8, null::int from held where id not in (select id from locked)
       -- Read only when a lease was left unlocked (rare: held by another transaction, or lost).
       and (select count(*) from locked) < ${items.length}`.execute(db),
  )
  return rows.map(({ due_ms, attempt, ...row }) => ({
    ...row,
    ...(due_ms != null && { dueMs: due_ms }),
    ...(attempt != null && { attempt }),
  }))
}
