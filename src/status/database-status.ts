// One database's status: reached read-only under a statement_timeout, section by section, each in a transaction of its own.
import type { Transaction } from 'kysely'
import type { DatabaseConfig } from '../config/database-list.ts'
import {
  describeLocksInTheWay,
  LOCK_TIMEOUT_SQLSTATE,
  readLocksInTheWay,
} from '../db/lock-in-the-way.ts'
import type { Database } from '../db/schema.ts'
import { readSchemaState, type SchemaState } from '../db/schema-state.ts'
import { serverRefusesWrites } from '../db/server-takes-writes.ts'
import { PERMISSION_DENIED_SQLSTATE, QUERY_CANCELED_SQLSTATE } from '../db/sqlstate.ts'
import { timedTransaction } from '../db/timed-transaction.ts'
import { type MailboxPauses, mailboxPauses } from '../outbox/mailbox-pauses.ts'
import { type OutboxStats, outboxStats } from '../outbox/outbox-stats.ts'
import { type PacingInForce, pacingInForce } from '../outbox/pacing-rate.ts'
import { type PendingLastErrors, pendingLastErrors } from '../outbox/pending-last-errors.ts'
import { type RecentFailures, recentFailures } from '../outbox/recent-failures.ts'
import { type WorkerPresence, workerPresence } from '../outbox/worker-presence.ts'
import { errorOf, type StatusError } from './status-error.ts'
import { openStatusDb, queryableOf } from './status-pool.ts'

const FAILURE_WINDOW_HOURS = 24
const FAILURE_CODES_SHOWN = 5
/** Failed rows looked at, newest first: bounds the one read whose cost grows with the rows kept. */
const FAILED_ROWS_SCANNED = 10_000
/** Pending rows waiting after an error looked at, in the claim's order: bounds the read in an outage. */
const PENDING_ROWS_SCANNED = 10_000

/**
 * What was read; a section is null when it was not read (schema not current, an earlier section
 * failed) or its read failed.
 */
export interface DatabaseReading {
  name: string
  /** The URL as configured (the caller masks its password before printing it). */
  url: string
  /** The server answered: the schema was read, or it refused the role a privilege (42501). */
  reachable: boolean
  /** Why the database could not be read (not reached, or a privilege refused). */
  error: StatusError | null
  schema: SchemaState | null
  /** The server takes no writes (a hot standby, or set read-only); null when not read. */
  readOnly: boolean | null
  stats: OutboxStats | null
  presence: WorkerPresence | null
  failures: RecentFailures | null
  /** Pending rows waiting after an error, by code; null when not read. */
  pendingErrors: PendingLastErrors | null
  pauses: MailboxPauses | null
  /** The rate every worker paces by and who noted it; null when not read or none noted. */
  pacing: PacingInForce | null
  /** Sections not read on a reachable database, with why (`skipped` after an earlier failure). */
  unread: { section: string; error: StatusError }[]
}

interface ReadOptions {
  /** Bounds connecting and every statement. */
  timeoutMs: number
  leaseSeconds: number
}

/**
 * Never writes: every statement runs in a READ ONLY transaction (timedTransaction: Postgres refuses
 * any write in it, ours or a function's). Never throws: a failure is reported in the reading.
 */
export async function readDatabaseStatus(
  d: DatabaseConfig,
  o: ReadOptions,
): Promise<DatabaseReading> {
  const reading: DatabaseReading = {
    name: d.name,
    url: d.url,
    reachable: false,
    error: null,
    schema: null,
    readOnly: null,
    stats: null,
    presence: null,
    failures: null,
    pendingErrors: null,
    pauses: null,
    pacing: null,
    unread: [],
  }
  const { db, close } = openStatusDb(d.url, o.timeoutMs)
  // A lock in the way gives up at half the bound (55P03), so that the rest names who holds it.
  const read = <T>(fn: (trx: Transaction<Database>) => Promise<T>) =>
    timedTransaction(db, o.timeoutMs, fn, { readOnly: true, lockTimeoutMs: o.timeoutMs / 2 })
  const failure = async (e: unknown): Promise<StatusError> => {
    const error = errorOf(e, o.timeoutMs)
    if (error.code !== LOCK_TIMEOUT_SQLSTATE) return error
    const locks = await read((trx) => readLocksInTheWay(queryableOf(trx))).catch(() => [])
    return locks.length > 0
      ? { ...error, message: `${error.message}: ${describeLocksInTheWay(locks)}` }
      : error
  }
  try {
    try {
      // In one transaction: one more statement, not one more round of BEGIN and COMMIT.
      const first = await read(async (trx) => ({
        schema: await readSchemaState(queryableOf(trx)),
        readOnly: await serverRefusesWrites(queryableOf(trx)),
      }))
      reading.schema = first.schema
      reading.readOnly = first.readOnly
      reading.reachable = true
    } catch (e) {
      reading.error = await failure(e)
      // A refused privilege (on the database, the schema or a table), a lock or a read the server
      // cancelled at the bound is the server's answer.
      reading.reachable =
        reading.error.code === PERMISSION_DENIED_SQLSTATE ||
        reading.error.code === LOCK_TIMEOUT_SQLSTATE ||
        reading.error.code === QUERY_CANCELED_SQLSTATE
      return reading
    }
    // Another release's schema may lack or have changed what these statements read.
    if (reading.schema.verdict !== 'current') return reading
    // After a failed section the rest is skipped: what held one (a lock, a stalled server) would
    // most likely hold the next, and the command must end within a few timeouts, not one per section.
    const section = async <T>(name: string, fn: (trx: Transaction<Database>) => Promise<T>) => {
      if (reading.unread.length > 0) {
        reading.unread.push({
          section: name,
          error: { code: 'skipped', message: 'not read after an earlier read failed' },
        })
        return null
      }
      try {
        return await read(fn)
      } catch (e) {
        reading.unread.push({ section: name, error: await failure(e) })
        return null
      }
    }
    reading.stats = await section('counts', (trx) => outboxStats(trx, null))
    reading.presence = await section('workers', (trx) =>
      workerPresence(trx, { liveSeconds: 2 * o.leaseSeconds, overdueSeconds: o.leaseSeconds }),
    )
    reading.pauses = await section('mailbox pauses', (trx) => mailboxPauses(trx))
    reading.pacing = await section('pacing rate', (trx) => pacingInForce(trx))
    reading.failures = await section('failures', (trx) =>
      recentFailures(trx, {
        hours: FAILURE_WINDOW_HOURS,
        limit: FAILURE_CODES_SHOWN,
        scanLimit: FAILED_ROWS_SCANNED,
      }),
    )
    reading.pendingErrors = await section("pending rows' errors", (trx) =>
      pendingLastErrors(trx, { limit: FAILURE_CODES_SHOWN, scanLimit: PENDING_ROWS_SCANNED }),
    )
    return reading
  } finally {
    await close()
  }
}
