// serve's schema check at start: every database's at once, the statement-mode probe first; a verdict ends the start, an outage does not.
import {
  describeLocksInTheWay,
  LOCK_TIMEOUT_SQLSTATE,
  readLocksInTheWay,
} from './db/lock-in-the-way.ts'
import { loginRefusal } from './db/login-refusal.ts'
import type { DbHandle } from './db/open.ts'
import { assertSchemaCurrentAndWrites } from './db/schema-state.ts'
import { notUtf8Warning } from './db/server-encoding.ts'
import { PERMISSION_DENIED_SQLSTATE } from './db/sqlstate.ts'
import {
  refusesTransactions,
  STATEMENT_POOLING_PROBLEM,
  transactionProbe,
} from './db/statement-pooling.ts'
import { AppError, isAppError } from './errors.ts'
import type { Logger } from './log.ts'
import { PERMISSION_ADVICE } from './outbox/statement-timeout.ts'

/**
 * How long serve's start waits for a lock on mailer.schema_migrations (a LOCK TABLE, VACUUM FULL
 * or ALTER TABLE left open): past it the start goes on, as for an unreachable database, rather than
 * wait out the pool's statement_timeout.
 */
const START_LOCK_TIMEOUT_MS = 2_000

/** The databases the start found current, and of those the ones whose session took writes. */
export interface StartSchemas {
  current: string[]
  /** Readiness's first probe may stand on this answer, as on a probe's own that found it so. */
  takingWrites: string[]
  /** Of those, each one whose encoding is not UTF8, with its encoding: readiness warns of it. */
  notUtf8: Record<string, string>
}

/**
 * Checks every database's schema at once. A verdict (missing, outdated) ends the start; an
 * unreachable database does not: the loops retry, readiness reports it. Each answer counts as one
 * to a statement of the database's route (noteAnswer), which readiness stands on for a few seconds.
 */
export async function checkSchemas(
  handles: readonly DbHandle[],
  log: Logger,
): Promise<StartSchemas> {
  const outcomes = await Promise.allSettled(handles.map((h) => probeThenRead(h)))
  const pooled = handles.find((_, i) => {
    const r = outcomes[i]!
    return r.status === 'fulfilled' && r.value === 'pooled'
  })
  if (pooled) throw new AppError('config_invalid', `${pooled.name}: ${STATEMENT_POOLING_PROBLEM}`)
  const current: string[] = []
  const takingWrites: string[] = []
  const notUtf8: Record<string, string> = {}
  for (const [i, r] of outcomes.entries()) {
    const db = handles[i]!.name
    if (r.status === 'fulfilled') {
      if (r.value === 'pooled') continue
      current.push(db)
      if (r.value.refusesWrites === false) takingWrites.push(db)
      // Warned of, not refused: a running deployment keeps working (migrate refuses a new install).
      if (r.value.encoding !== null && r.value.encoding !== 'UTF8') {
        notUtf8[db] = r.value.encoding
        log.warn(notUtf8Warning(r.value.encoding), { db, encoding: r.value.encoding })
      }
      if (r.value.newer.length > 0) {
        log.warn('database has migrations from a newer release; they keep this one working', {
          db,
          newer: r.value.newer,
        })
      }
    } else if (isAppError(r.reason)) {
      throw r.reason
    } else if ((r.reason as { code?: unknown }).code === LOCK_TIMEOUT_SQLSTATE) {
      // The server answered; the start goes on as for an outage, and readiness names the lock.
      const locks = await readLocksInTheWay(handles[i]!.pool, 'mailer.schema_migrations').catch(
        () => [],
      )
      const who =
        locks.length > 0 ? describeLocksInTheWay(locks) : 'a lock on mailer.schema_migrations'
      log.warn(`${who} blocks the schema check at start; will keep trying`, {
        db,
        sqlstate: LOCK_TIMEOUT_SQLSTATE,
      })
    } else if ((r.reason as { code?: unknown }).code === PERMISSION_DENIED_SQLSTATE) {
      // The server answered (CONNECT refused, a right on the schema revoked): no network to check.
      // A grant mends it without a restart, so the start goes on as for an outage.
      log.warn(
        `the database refused this service's role a privilege at start (SQLSTATE ${PERMISSION_DENIED_SQLSTATE}): ${PERMISSION_ADVICE}; will keep trying`,
        { db, sqlstate: PERMISSION_DENIED_SQLSTATE, err: r.reason },
      )
    } else {
      // The server answered: a password, a role or a database name to fix outside the process,
      // after which the next connection succeeds, so the start goes on as for an outage.
      const login = loginRefusal(r.reason)
      if (login) {
        log.warn(
          `the database refused this service's connection at start (SQLSTATE ${login.sqlstate}: ${login.cause}): ${login.advice}; will keep trying`,
          { db, sqlstate: login.sqlstate, err: r.reason },
        )
      } else log.warn('database unreachable at start; will keep trying', { db, err: r.reason })
    }
  }
  return { current, takingWrites, notUtf8 }
}

/**
 * The statement-mode probe, then the schema read, on one pool connection, released once both are
 * done: a pooler in statement mode ends every transaction, and claims, settlements and enqueues run
 * in transactions. One connection, so a database the probe could not reach is not asked again (a
 * second connect's wait, 10 s, or a statement's 60 s, would hold back every database's start); and
 * released once, so its pickup prime (queued at a connection's first release, PrimedPool) runs after
 * the read, not ahead of it (a cold claim, slot take and last check held the start back).
 */
async function probeThenRead(
  h: DbHandle,
): Promise<'pooled' | { newer: number[]; refusesWrites: boolean | null; encoding: string | null }> {
  const client = await h.pool.connect()
  // Never lent again mid-transaction or ended: a connection that met a failure is discarded.
  let failed = true
  try {
    const probe = await transactionProbe(client)
    if (refusesTransactions(probe)) return 'pooled'
    if (probe !== null) throw probe
    const read = await assertSchemaCurrentAndWrites(client, h.name, undefined, {
      lockTimeoutMs: START_LOCK_TIMEOUT_MS,
    })
    h.statements.noteAnswer()
    failed = false
    return read
  } finally {
    client.release(failed)
  }
}
