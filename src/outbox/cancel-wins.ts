// A recorded cancel wins: a row with a cancel recorded ends cancelled, whichever statement ends it unsent (its lease's settlement, the expiry sweep).
import { sql } from 'kysely'
import { afterWords, INTERRUPTED_SEND_MAY_HAVE_DELIVERED } from './may-have-delivered.ts'
import { OUTCOME_UNKNOWN } from './outcome-unknown.ts'

/**
 * On the outbox row `o`, read on the version the statement locks: a cancel was accepted (202) while
 * a worker held the row, and no send starts after it (the last check and the claim refuse it). The
 * row then ends `cancelled` (status, code, history outcome) whatever else ended it: what its worker
 * met (the check found the row busy, a stop, a paused mailbox), or its expiresAt passing while it
 * waited pending; the attempt counts. Only a sent row is not cancelled: the mail went.
 */
export const cancelRecorded = sql<boolean>`o.cancel_requested_at is not null`

/**
 * Of a row `o`: its cancel recorded while it keeps an interrupted send's mark, so that send is to be
 * looked up, or named unresolved, before the cancel ends it (cancelled-interrupted.ts). A sending
 * row's mark is set with its cancel recorded only so: a claim marks none then, and a cancel is never
 * recorded on a row whose send started.
 */
export const cancelAwaitsLookup = sql<boolean>`(${cancelRecorded} and o.send_started_at is not null)`

/** The last_error of a row a recorded cancel ended (a reclaim's says which worker stopped). */
export const CANCELLED_BEFORE_SEND = sql.lit('cancelled before the send started')

/**
 * The last_error of a row a recorded cancel ended while an interrupted earlier send of it stayed
 * unresolved (not looked up, or the lookup could not say): that send may have delivered it.
 */
export const CANCELLED_UNRESOLVED = sql.lit(
  `cancelled; an interrupted send could not be looked up${afterWords(OUTCOME_UNKNOWN)}`,
)

/**
 * The last_error of a row a recorded cancel ended with lookups off: its interrupted earlier send is
 * not looked up (cancelled-interrupted.ts), and may have delivered it.
 */
export const CANCELLED_UNLOOKED = `cancelled${afterWords(INTERRUPTED_SEND_MAY_HAVE_DELIVERED)}`

/** CANCELLED_UNRESOLVED of a row whose lookup's workers kept stopping (reclaim.ts). */
export const CANCELLED_LOOKUP_STOPPED = sql.lit(
  `cancelled; an interrupted send could not be looked up (the worker looking it up stopped)${afterWords(OUTCOME_UNKNOWN)}`,
)
