// settleLeases: records the outcomes of a batch of leases and their attempt history in one statement.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { cancelRecorded } from './cancel-wins.ts'
import { lookedUpAttempt } from './looked-up-attempt.ts'
import { lookupPastExpirySeconds } from './lookup-grace.ts'
import { entryKind } from './settle-entry-kind.ts'
import { settleInput } from './settle-input.ts'
import {
  BUSY_OUTCOME,
  PACED_CODE,
  PAUSED_CODE,
  type SettledRow,
  type SettleItem,
  TOKEN_WAIT_CODE,
} from './settle-item.ts'
import { exhaustedError, settledLastError } from './settle-last-error.ts'
import { type Fit, writingStorable } from './storable-in-encoding.ts'
import { throttledSince } from './throttled-since.ts'

/**
 * How long before its expiresAt a row waits to look its interrupted send up (lookUpFirst): a row is
 * due before it expires (email_outbox_expiry_check), and woken at the expiresAt its claim finds it
 * expired, so only looks that send up.
 */
const BEFORE_EXPIRY = sql`interval '1 millisecond'`

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
      ${settleInput(items, storable)}
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
             last_error = ${settledLastError},
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
