// The expiry sweep: pending rows past their expiresAt fail with code expired (or end cancelled), as CTEs of the reclaim statement.
import { sql } from 'kysely'
import { CANCELLED_UNLOOKED, cancelAwaitsLookup, cancelRecorded } from './cancel-wins.ts'
import { cancelledBeforeSend, notSentBeforeExpiry } from './earlier-interrupted.ts'
import { expiredUnresolved } from './expired-unresolved.ts'
import { kindLit } from './history-kind.ts'
import { lookedUpAttempt } from './looked-up-attempt.ts'
import { lookupPastExpirySeconds } from './lookup-grace.ts'

/** Rows failed per statement; a full batch makes the reclaim run again at once. */
export const EXPIRY_SWEEP_LIMIT = 500

export interface ExpirySweep {
  /** Named in the history, as a claim that finds a row expired names its worker. */
  workerId: string
  limit: number
  /**
   * Mailbox lookups are on: a row whose earlier send was interrupted is left to a claim, whose
   * lookup (expired-interrupted.ts) says whether that send went; swept, Graph's delivered message
   * would read failed expired. Left so until lookupPastExpirySeconds past its expiresAt only.
   */
  lookups?: boolean
  /**
   * With lookups: how long past its expiresAt such a row is left to a claim's lookup, the bound its
   * claim's waits have (settle.ts): lookupPastExpirySeconds of the worker's lookup grace; by default
   * LOOKUP_GRACE_SECONDS's.
   */
  lookupPastExpirySeconds?: number
}

export interface Swept {
  id: string
  /** cancelled: a cancel was recorded on the row (code cancelled); failed: code expired. */
  status: 'failed' | 'cancelled'
  tenant: string
  attempt: number
  correlationId: string | null
}

/**
 * CTEs for the WITH list of a statement the worker runs anyway (its reclaim: at least once per
 * lease length), so a row nobody claims (a refused credential holding claims off, a backlog, no
 * worker until now) still fails within a lease length of its expiresAt and costs no statement of
 * its own. `swept` returns the rows failed; select from it.
 * Recorded as a claim that finds the row expired records it (claim, then settle_verdict
 * 'expired'): the attempt counted, code expired, one history entry naming the worker; a row with
 * an interrupted earlier send keeps that send's mark, named, and counts no attempt (its claim only
 * looks the send up or names it: lease.ts lookupOnly), its entry numbered as that lookup's would
 * be (looked-up-attempt.ts): the attempt whose send it names or, after a counted claim that sent
 * nothing, that claim's. A row with a cancel recorded (accepted while a worker held it, which then
 * gave it back pending) ends cancelled instead: a recorded cancel wins (cancel-wins.ts), here as in
 * the settlement of a lease; the attempt counts (none with the mark), the history says cancelled.
 * Invariant: only a `pending` row is failed, judged on its locked latest version: a claimed row
 * (`sending`) is its worker's to settle, and a row another statement holds (a claim, a cancel) is
 * skipped, never waited for. With lookups on, a row with an interrupted send is swept only past
 * its lookup's bound (lookupPastExpirySeconds past its expiresAt): until then it stays pending for
 * a claim to look it up (never send it); past it, nothing claimed it (its mailbox paused on, no
 * worker for it), and it ends as a claim held back past the bound ends it (settle.ts), expired
 * naming that send (settle-last-error.ts). Candidates come from email_outbox_expiring_idx
 * (sql/0022: a range scan up to now(), earliest expiry first; the few marked rows within their
 * bound are passed over in it) and are locked in id order, as every statement locking several
 * outbox rows does.
 */
export function expirySweep(s: ExpirySweep) {
  // The candidates reach the rows they lock and update through the primary key alone (a list of
  // ids joined to it): offered the expiry index too, a plan from statistics that had not seen the
  // rows expire rescanned the candidate list once per expired row (0.3 s for 2,000 rows).
  const bound = s.lookupPastExpirySeconds ?? lookupPastExpirySeconds()
  // With lookups on, a marked row within its lookup's bound is left out: it waits for a claim.
  const unlessAwaitingLookup = s.lookups
    ? sql`and (o.send_started_at is null
               or o.expires_at + make_interval(secs => ${bound}::float8) <= now())`
    : sql``
  // Its cancel recorded with an interrupted send's mark (lookups off, or on past the lookup's
  // bound): as its claim would settle it (cancelled-interrupted.ts), cancelled with that send unresolved.
  const cancelUnlooked = cancelAwaitsLookup
  // Not sent again: a row with an interrupted send's mark counts no attempt, as its claim would not
  // (lease.ts lookupOnly).
  const counted = sql<boolean>`(o.send_started_at is null)`
  return sql`expiring as materialized (
      select o.id from mailer.email_outbox o
       where o.status = 'pending' and o.expires_at is not null and o.expires_at <= now()
             ${unlessAwaitingLookup}
       order by o.expires_at
       limit ${s.limit}
    ), expiring_locked as materialized (
      -- Status re-checked on the locked latest version; expires_at is never updated, so its
      -- candidate's reading stands.
      select o.id from unnest(array(select id from expiring)) as e(id)
        join mailer.email_outbox o on o.id = e.id
       where o.status = 'pending'
       order by o.id
         for update of o skip locked
    ), swept as (
      update mailer.email_outbox o
         set status = case when ${cancelRecorded} then 'cancelled' else 'failed' end,
             attempts = o.attempts + ${counted}::int,
             last_error_code = case when ${cancelRecorded} then 'cancelled' else 'expired' end,
             last_error = case when ${cancelUnlooked} then ${sql.lit(CANCELLED_UNLOOKED)}
                               when ${cancelRecorded} then ${cancelledBeforeSend}
                               when o.send_started_at is null then ${notSentBeforeExpiry}
                               else ${expiredUnresolved()} end
        from unnest(array(select id from expiring_locked)) as l(id)
       where o.id = l.id and o.status = 'pending'
      -- A marked row's entry (and its line) numbers as a lookup's settlement does (looked-up-attempt.ts):
      -- the row's count, the attempt whose send it names or, after a counted claim that sent nothing,
      -- that claim's; the count + 1 for a 504's send given back uncounted, no claim counted since.
      returning o.id, o.status, o.tenant,
                case when ${counted} then o.attempts else ${lookedUpAttempt(sql`o.id`, sql`o.attempts`)} end as attempts,
                o.correlation_id, o.last_error_code, o.last_error,
                -- Its kind (history-kind.ts): a row keeping an interrupted send's mark ends with that
                -- send unresolved (last_error names it), any other ends unsent.
                case when o.send_started_at is null then ${kindLit('attempt')}
                     else ${kindLit('unresolved')} end as kind
    ), swept_history as (
      -- The outcome is the code: expired, or cancelled.
      insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error, kind)
      select id, attempts, ${s.workerId}, last_error_code, last_error_code, last_error, kind from swept
    )`
}
