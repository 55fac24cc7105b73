// What the Postgres-coordinated send gate is given: its database, its holder, and the limits it keeps across workers.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'

export interface PgSendGateOptions {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  holder: string
  /** Concurrent provider requests across all workers. */
  maxConcurrency: number
  /** Sends per mailbox per minute across all workers; 0 = no pacing. */
  ratePerMinute: number
  /** A dead holder's slot frees itself after this long: longer than one request's deadline. */
  slotTtlMs: number
  /** Upper bound of one wait between attempts, so a freed slot is noticed quickly. */
  maxWaitMs?: number
  /**
   * How long after taking a slot this worker may still start another send in it instead of giving
   * it back (default 500 ms, at most a quarter of the TTL): every slot returns to the database
   * often enough for other workers to take it, and starts each send with most of its TTL ahead.
   */
  reuseMs?: number
  /** How long a given-back slot is kept for this worker's next send before it is freed (default 50 ms). */
  parkMs?: number
  /**
   * The note of this worker's liveness lock while its LISTEN session holds it; absent or null:
   * none, and its slots wait out their TTL should it die (holder-lock.ts).
   */
  lockNote?: () => string | null
}
