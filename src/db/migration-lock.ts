// The migrator's session: its own (never a transaction pooler's), holding the migration lock while it migrates.
import type pg from 'pg'
import { type Clock, monotonicNow } from '../clock.ts'
import { AppError } from '../errors.ts'
import { hearsOtherSessions } from './listen-probe.ts'
import {
  refusesTransactions,
  STATEMENT_POOLING_PROBLEM,
  transactionProbe,
} from './statement-pooling.ts'

// Arbitrary constant shared by every outbox-mailer binary: "mailer" in ASCII.
const MIGRATION_LOCK_KEY = 0x6d61696c6572
export const MIGRATE_APPLICATION_NAME = 'outbox-mailer:migrate'

/**
 * Refuses a pooler in statement mode, then a transaction pooler, before anything is set or locked: its settings would stay on a
 * server session the pooler lends the application next, and its session lock could be left where
 * no later migrate can free it. Only a session of its own hears another session's notification.
 * `signal` (migrate's deadline) ends the check where it is, throwing: its second session dropped.
 */
export async function assertOwnSession(client: pg.Client, url: string, signal?: AbortSignal) {
  // A statement pooler ends this session at the probe's BEGIN (nothing set or locked yet): said so,
  // not as the transaction pooler the notification probe below would take it for.
  if (refusesTransactions(await transactionProbe(client))) {
    throw new AppError(
      'config_invalid',
      `migrate: ${STATEMENT_POOLING_PROBLEM}. Nothing was changed`,
    )
  }
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid')
  const own = await hearsOtherSessions(client, {
    url,
    backendPid: rows[0]!.pid,
    applicationName: MIGRATE_APPLICATION_NAME,
    timeoutMs: 5_000,
    signal,
  })
  // Unasked (no second session could be opened): as before the probe existed, go on.
  if (own !== false) return
  throw new AppError(
    'config_invalid',
    'migrate needs a session of its own, and this URL is a transaction pooler (a notification from another session never reached it): set LISTEN_DATABASE_URL (or the database\'s "listenUrl" in MAILER_DATABASES) to the direct URL. Nothing was changed',
  )
}

/**
 * Takes the session's migration lock, trying again until `timeoutMs` have passed. Polled instead of
 * waited for in pg_advisory_lock: a statement waiting for the lock holds a snapshot, and the
 * holder's CREATE INDEX CONCURRENTLY (0009) waits for every older snapshot to go: a deadlock.
 */
export async function takeMigrationLock(client: pg.Client, timeoutMs: number, clock: Clock) {
  // Monotonic: a wall clock stepped back would stretch the bound by the step, forward cut it short.
  const deadline = monotonicNow(clock) + timeoutMs
  for (let delayMs = 50; ; delayMs = Math.min(delayMs * 2, 1_000)) {
    const { rows } = await client.query<{ locked: boolean }>(
      'select pg_try_advisory_lock($1) as locked',
      [MIGRATION_LOCK_KEY],
    )
    if (rows[0]?.locked) return
    const left = deadline - monotonicNow(clock)
    if (left <= 0) {
      throw new AppError(
        'migration_lock_timeout',
        'another migrator holds the migration lock; try again once it has finished',
      )
    }
    await clock.sleep(Math.min(delayMs, left))
  }
}

/** Gives the session's migration lock back (its end would too). */
export async function releaseMigrationLock(client: pg.Client) {
  await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
}
