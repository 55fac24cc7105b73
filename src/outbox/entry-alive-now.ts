// A worker's registry entry whose worker is alive now, as a read can tell: its beat not overdue by its own lease, or its LISTEN session holding its liveness lock.
import { sql } from 'kysely'
import { LONGEST_LEASE_SECONDS } from '../config/env-schema.ts'
import { heldHolderLocks, holderLockKey } from './holder-lock.ts'

/**
 * How late past its lease length a live worker's beat may come and still read as on time: its
 * idle reclaim (which carries the beat) is due a lease length after the last one ended
 * (lease-upkeep.ts), so the gap between two is that, the reclaim's own time and a pool's wait.
 */
export const BEAT_LATE_SECONDS = 5

/**
 * An SQL condition on mailer.workers as `alias` (SQL the caller writes, never a value), stricter
 * than liveRegistryEntry's two lease lengths (the rule for what a gone worker's entry still holds):
 * its worker is alive now. A killed worker (no clean stop: its entry is left) reads live there for
 * up to two leases; here, for at most one and BEAT_LATE_SECONDS: idle, a live worker beats once per
 * lease length (sql/0084), more often while it holds leases. Or, its beat late (a reclaim slow to
 * answer), its LISTEN session holds its liveness lock (holder-lock.ts, sql/0117), which the server
 * releases the moment a killed worker's session ends. A live worker whose beat is late and that
 * holds no lock (LISTEN off or through a pooler, its session reconnecting) reads as gone: what
 * asks then does what it does with no other worker (a slow token request's rows kept, not given
 * back). The advisory locks (pg_locks, which takes every lock-manager partition's lock) are read
 * only for an entry whose beat is late, once a statement.
 */
export function entryAliveNow(alias: string) {
  const w = sql.raw(alias)
  return sql`(${w}.last_heartbeat_at >= now() - make_interval(
                secs => coalesce(${w}.lease_seconds, ${LONGEST_LEASE_SECONDS}::int) + ${BEAT_LATE_SECONDS}::int)
              or ${holderLockKey(sql`${w}.id`)} in (select key from (${heldHolderLocks()}) l))`
}
