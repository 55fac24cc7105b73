// A worker's registry entry judged live by its own lease length: the rule for whose MAIL_FROM a probe stays owed and whose rows a refused pause holds.
import { sql } from 'kysely'
import { LONGEST_LEASE_SECONDS } from '../config/env-schema.ts'

/**
 * An SQL condition on mailer.workers as `alias` (SQL the caller writes, never a value): the entry
 * beat within two of its own lease lengths (sql/0084: idle, a worker beats once per lease length;
 * judged by the reader's, a worker of a longer lease was taken for gone between two beats); one
 * that notes none (an older binary's), within two of the longest lease the configuration takes
 * (its worker may beat that seldom).
 */
export function liveRegistryEntry(alias: string) {
  const w = sql.raw(alias)
  return sql`${w}.last_heartbeat_at >= now() - make_interval(
               secs => 2 * coalesce(${w}.lease_seconds, ${LONGEST_LEASE_SECONDS}::int))`
}

/**
 * When the entry as `alias` stops reading live by liveRegistryEntry's rule, absent a beat: two of
 * its own lease lengths (or of the longest, noting none) past its last beat. No statement marks
 * that moment (a killed worker's entry is purged only after a day): a reader that waits for it
 * asks again then (paced-rows-blocked.ts).
 */
export function liveRegistryEntryEnd(alias: string) {
  const w = sql.raw(alias)
  return sql`(${w}.last_heartbeat_at + make_interval(
                secs => 2 * coalesce(${w}.lease_seconds, ${LONGEST_LEASE_SECONDS}::int)))`
}
