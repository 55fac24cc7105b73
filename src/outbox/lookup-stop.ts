// A reclaimed lease that only looked a row's interrupted send up, no send started under it: its words, and the history entries that record a send's end (such a stop's do not).
import { sql } from 'kysely'

/** What every lookup's stop says first: the worker that stopped was not sending. */
const LOOKING_UP_STOPPED = 'the worker looking up its interrupted send stopped'

/** The last_error (and entry) of the reclaim of a lookup's lease (lease.ts lookupOnly) under which no send started. */
export const LOOKUP_STOPPED = sql.lit(`${LOOKING_UP_STOPPED}; outcome unknown`)

/** As LOOKUP_STOPPED, of a lookup whose row's cancel was requested: the cancel stands. */
export const CANCEL_LOOKUP_STOPPED = sql.lit(`${LOOKING_UP_STOPPED}; its cancel stands`)

/** Of a history entry `alias`: a lookup's stop (LOOKUP_STOPPED, CANCEL_LOOKUP_STOPPED). Never null. */
export const stoppedLookingUp = (alias: string) => {
  const h = sql.ref(alias)
  return sql<boolean>`(${h}.outcome = 'lease_expired'
    and coalesce(${h}.error like ${sql.lit(`${LOOKING_UP_STOPPED}%`)}, false))`
}

/**
 * Of a history entry `alias`: it records the end of a send of its own, a settled retry, a worker
 * stopped during it (a reclaim's lease_expired), or a gateway's 502 or 504 given back uncounted (a
 * throttle with its send's start: Graph may have taken it), not a lookup's stop, which sent nothing
 * and whose entry numbers the send it looked up. Never null.
 */
export const endsASend = (alias: string) => {
  const h = sql.ref(alias)
  return sql<boolean>`((${h}.outcome in ('retry', 'lease_expired') and not ${stoppedLookingUp(alias)})
    or (${h}.outcome = 'throttled' and ${h}.started_at is not null
        and coalesce(${h}.http_status in (502, 504), false)))`
}
