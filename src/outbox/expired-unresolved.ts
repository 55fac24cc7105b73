// The words of a row ended past its expiresAt with an interrupted send of it unresolved: one spelling for the settlement, the expiry sweep and the reclaim.
import { sql } from 'kysely'
import { afterWords, INTERRUPTED_SEND_MAY_HAVE_DELIVERED } from './may-have-delivered.ts'

/**
 * The last_error (and history entry) of a row failed expired whose interrupted send was never
 * looked up, or whose lookup could not say: that send may have delivered it. `suffix` says why no
 * lookup settled it, as ' (the worker looking it up stopped)'.
 */
export const expiredUnresolved = (suffix = '') =>
  sql.lit(`expiresAt passed${afterWords(INTERRUPTED_SEND_MAY_HAVE_DELIVERED)}${suffix}`)
