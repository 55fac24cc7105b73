// A reclaimed lease under which no send started while its row kept an interrupted send's mark (a lookup's, or with lookups off a counted claim's before it sent again): its words, and the history entries that record a send's end (such a stop's do not).
import { sql } from 'kysely'
import { byKind, kindIn, OLD_BEFORE_SENDING_AGAIN, OLD_LOOKING_UP_STOPPED } from './history-kind.ts'
import { afterWords } from './may-have-delivered.ts'
import { EARLIER_SEND_OUTCOME_UNKNOWN, OUTCOME_UNKNOWN } from './outcome-unknown.ts'

/** What every lookup's stop says first: the worker that stopped was not sending. */
const LOOKING_UP_STOPPED = 'the worker looking up its interrupted send stopped'

/** The last_error (and entry) of the reclaim of a lookup's lease (lease.ts lookupOnly) under which no send started. */
export const LOOKUP_STOPPED = sql.lit(`${LOOKING_UP_STOPPED}${afterWords(OUTCOME_UNKNOWN)}`)

/** As LOOKUP_STOPPED, of a lookup whose row's cancel was requested: the cancel stands. */
export const CANCEL_LOOKUP_STOPPED = sql.lit(`${LOOKING_UP_STOPPED}; its cancel stands`)

/** What a counted claim's stop says when, lookups off, it had not sent the row again. */
const BEFORE_SENDING_AGAIN = 'the worker holding the lease stopped before sending again'

/**
 * The last_error (and entry) of the reclaim, lookups off, of a counted claim of a row with an
 * interrupted send's mark under which no send started (rendering, its token held it): not a stop
 * during the send, which the mark, that earlier send's, would otherwise read as.
 */
export const STOPPED_BEFORE_SENDING_AGAIN = sql.lit(
  `${BEFORE_SENDING_AGAIN}${afterWords(EARLIER_SEND_OUTCOME_UNKNOWN)}`,
)

/**
 * Of a history entry `alias`: a stop under which no send started though the row kept a mark (a
 * lookup's: LOOKUP_STOPPED, CANCEL_LOOKUP_STOPPED; STOPPED_BEFORE_SENDING_AGAIN), by its kind
 * (history-kind.ts), or an older binary's by its words. Never null.
 */
export const stoppedLookingUp = (alias: string) => {
  const h = sql.ref(alias)
  return sql<boolean>`(${h}.outcome = 'lease_expired'
    and ${byKind(
      alias,
      kindIn(alias, ['stopped_looking_up', 'stopped_before_resend']),
      sql<boolean>`(${h}.error like ${sql.lit(`${OLD_LOOKING_UP_STOPPED}%`)}
                    or ${h}.error like ${sql.lit(`${OLD_BEFORE_SENDING_AGAIN}%`)})`,
    )})`
}

/**
 * Of a history entry `alias`: it records the end of a send of its own, a settled retry, a worker
 * stopped during it (a reclaim's lease_expired), or a gateway's 502 or 504 given back uncounted (a
 * throttle with its send's start: Graph may have taken it), not a stop under which no send started
 * (stoppedLookingUp: a lookup's, which numbers the send it looked up, or a claim's before it sent
 * again). Never null.
 */
export const endsASend = (alias: string) => {
  const h = sql.ref(alias)
  return sql<boolean>`((${h}.outcome in ('retry', 'lease_expired') and not ${stoppedLookingUp(alias)})
    or (${h}.outcome = 'throttled' and ${h}.started_at is not null
        and coalesce(${h}.http_status in (502, 504), false)))`
}
