// One database's status: reached read-only under a statement_timeout, section by section, each in a transaction of its own.
import { CompiledQuery, Kysely, PostgresDialect, type Transaction } from 'kysely'
import pg from 'pg'
import type { DatabaseConfig } from '../config/database-list.ts'
import {
  describeLocksInTheWay,
  LOCK_TIMEOUT_SQLSTATE,
  readLocksInTheWay,
} from '../db/lock-in-the-way.ts'
import type { Database } from '../db/schema.ts'
import { readSchemaState, type SchemaState } from '../db/schema-state.ts'
import { serverRefusesWrites } from '../db/server-takes-writes.ts'
import { SessionClient } from '../db/session-settings.ts'
import { PERMISSION_DENIED_SQLSTATE, QUERY_CANCELED_SQLSTATE } from '../db/sqlstate.ts'
import type { Queryable } from '../db/statement-route.ts'
import { timedTransaction } from '../db/timed-transaction.ts'
import { tlsFailureOf } from '../db/tls-failure.ts'
import { type MailboxPauses, mailboxPauses } from '../outbox/mailbox-pauses.ts'
import { type PacingInForce, pacingInForce } from '../outbox/pacing-rate.ts'
import { type RecentFailures, recentFailures } from '../outbox/recent-failures.ts'
import { type OutboxStats, outboxStats } from '../outbox/stats.ts'
import { type WorkerPresence, workerPresence } from '../outbox/worker-presence.ts'

const STATUS_APPLICATION_NAME = 'outbox-mailer:status'
const FAILURE_WINDOW_HOURS = 24
const FAILURE_CODES_SHOWN = 5
/** Failed rows looked at, newest first: bounds the one read whose cost grows with the rows kept. */
const FAILED_ROWS_SCANNED = 10_000

export interface StatusError {
  /**
   * SQLSTATE, a Node code (ECONNREFUSED, ENOTFOUND), `timeout`, `connection_terminated`,
   * `tls_refused` (the server serves no TLS) or `tls_certificate` (its certificate is not trusted).
   */
  code: string
  message: string
}

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
  mailboxRatePerMinute: number
}

function errorOf(e: unknown): StatusError {
  if (e instanceof AggregateError && e.errors.length > 0) return errorOf(e.errors[0])
  const message = e instanceof Error ? e.message || e.name : String(e)
  const code = (e as { code?: unknown } | null)?.code
  // A certificate's own code (DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED…) stays in the message.
  const tls = tlsFailureOf(code, message)
  if (tls === 'tls_certificate') return { code: tls, message: `${message} (${code})` }
  if (tls) return { code: tls, message }
  if (typeof code === 'string' && code) return { code, message }
  if (/timeout/i.test(message)) return { code: 'timeout', message }
  // pg's words for a socket the server (or something on the way) closed, which carry no code.
  if (/Connection terminated/i.test(message)) return { code: 'connection_terminated', message }
  return { code: 'unknown', message }
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
    pauses: null,
    pacing: null,
    unread: [],
  }
  // A pool of its own, not openDb's: openDb asks for statement_timeout as a startup parameter, which a
  // transaction pooler refuses (openDb then connects again without it: a second connect within
  // --timeout); and this one-shot bounds connecting by --timeout, keeps no connection open and
  // prepares nothing. Both bounds are set per transaction instead (timedTransaction).
  const pool = new pg.Pool({
    connectionString: d.url,
    application_name: STATUS_APPLICATION_NAME,
    Client: SessionClient,
    max: 1,
    connectionTimeoutMillis: o.timeoutMs,
    // The server's statement_timeout bounds a slow statement; this bounds a socket gone silent.
    query_timeout: o.timeoutMs + 1_000,
  })
  // A connection lost while idle surfaces through the next query; the pool's event must not crash us.
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  // A lock in the way gives up at half the bound (55P03), so that the rest names who holds it.
  const read = <T>(fn: (trx: Transaction<Database>) => Promise<T>) =>
    timedTransaction(db, o.timeoutMs, fn, { readOnly: true, lockTimeoutMs: o.timeoutMs / 2 })
  const failure = async (e: unknown): Promise<StatusError> => {
    const error = errorOf(e)
    // The server cancelled a read that ran past the bound, no lock wait having reached half of it:
    // the server answers, slowly (CPU, I/O), or the read is heavy for it. Said so, not as an outage.
    if (error.code === QUERY_CANCELED_SQLSTATE && /statement timeout/.test(error.message)) {
      return {
        ...error,
        message: `${error.message} (the read ran past --timeout, ${o.timeoutMs / 1000} s, no lock in the way: the server is slow to answer, or the read is heavy for it)`,
      }
    }
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
    reading.pauses = await section('mailbox pauses', (trx) =>
      mailboxPauses(trx, {
        pacingIntervalMs: o.mailboxRatePerMinute > 0 ? 60_000 / o.mailboxRatePerMinute : 0,
      }),
    )
    reading.pacing = await section('pacing rate', (trx) => pacingInForce(trx))
    reading.failures = await section('failures', (trx) =>
      recentFailures(trx, {
        hours: FAILURE_WINDOW_HOURS,
        limit: FAILURE_CODES_SHOWN,
        scanLimit: FAILED_ROWS_SCANNED,
      }),
    )
    return reading
  } finally {
    await db.destroy().catch(() => {})
    // Kysely ends the pool only if it ever took a connection from it.
    if (!pool.ended) await pool.end().catch(() => {})
  }
}

/** The migration reader takes pg's interface; inside the read-only transaction it goes through Kysely. */
function queryableOf(trx: Transaction<Database>): Queryable {
  return {
    query: async (text, values) => {
      const r = await trx.executeQuery(CompiledQuery.raw(text, values ?? []))
      return { rows: r.rows } as never
    },
  }
}
