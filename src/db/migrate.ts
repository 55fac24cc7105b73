// Applies embedded migrations under an advisory lock, each in a transaction or statement by statement.
import { type Clock, systemClock, waitAtMost } from '../clock.ts'
import { isAppError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { boundedSession } from './bounded-session.ts'
import {
  leftOf,
  type MigrateDeadline,
  resetSession,
  watchDeadline,
  withinDeadline,
} from './migrate-deadline.ts'
import { type StopPoint, stoppedAtDeadline } from './migrate-stopped.ts'
import { applyWithRetries } from './migration-apply.ts'
import {
  assertOwnSession,
  MIGRATE_APPLICATION_NAME,
  releaseMigrationLock,
  takeMigrationLock,
} from './migration-lock.ts'
import { planMigrations, runsOutsideTransaction } from './migration-plan.ts'
import { ensureMigrationsTable, readApplied } from './migration-record.ts'
import { migrations as embedded, type Migration } from './migrations.ts'
import { assertEncodingTakesMigrations, notUtf8Warning } from './server-encoding.ts'
import { serverKeepaliveFor, setServerKeepalive } from './server-keepalive.ts'
import { CONNECT_TIMEOUT_MS, SessionClient } from './session-settings.ts'

interface MigrateOptions {
  url: string
  log: Logger
  /** How long to wait for another migrator's lock, or for a table lock, before failing. */
  lockTimeoutMs?: number
  migrations?: readonly Migration[]
  clock?: Clock
  /** The whole run's (migrate-every.ts: one for every database); none when absent or null. */
  deadline?: MigrateDeadline | null
}

interface MigrateResult {
  applied: number[]
  version: number
  /** Applied by a newer release, unknown to this binary, and declared to keep older binaries working. */
  newer: number[]
}

/**
 * Applies pending migrations while holding a session advisory lock: each in its own transaction,
 * or statement by statement when the file says `--! no-transaction`. At the deadline whatever runs
 * is cancelled (migrate-deadline.ts) and the run ends with migrate-stopped.ts's error.
 */
export async function migrate(o: MigrateOptions): Promise<MigrateResult> {
  const list = o.migrations ?? embedded
  const deadline = o.deadline ?? null
  if (deadline && leftOf(deadline) <= 0) {
    throw await stoppedAtDeadline({ deadline, at: { step: 'before' }, applied: [], session: null })
  }
  const client = new SessionClient({
    connectionString: o.url,
    application_name: MIGRATE_APPLICATION_NAME,
    connectionTimeoutMillis: withinDeadline(deadline, CONNECT_TIMEOUT_MS),
  })
  await client.connect().catch(async (e: unknown) => {
    if (deadline && leftOf(deadline) <= 0) {
      throw await stoppedAtDeadline({
        deadline,
        at: { step: 'connect' },
        applied: [],
        session: null,
        cause: e,
      })
    }
    throw unansweredConnect(e)
  })
  const watch = watchDeadline(client, {
    url: o.url,
    pid: (client as unknown as { processID: number }).processID,
    applicationName: MIGRATE_APPLICATION_NAME,
    deadline,
  })
  const stopped = () => watch.reached || leftOf(deadline) <= 0
  // Past the deadline, the session's statements: a silent one is never queued behind.
  const pastDeadline = boundedSession(client)
  let at: StopPoint = { step: 'session' }
  const done: number[] = []
  let locked = false
  try {
    await assertOwnSession(client, o.url, watch.signal)
    const lockTimeoutMs = Math.max(1, Math.round(o.lockTimeoutMs ?? 60_000))
    // A role's or database's statement_timeout (managed Postgres often sets one) would cancel a
    // long index build, and every rerun of it; waits stay bounded by lock_timeout.
    await client.query(`set statement_timeout = 0; set lock_timeout = ${lockTimeoutMs}`)
    // Before the lock: a migrator whose machine vanishes (a release machine lost mid-run) would
    // hold it, and a migration's table locks, for the system's 2 hours of keepalive, every later
    // migrate giving up on it. Not a check's interval to outlast: the shortest give-up. A refusal
    // is a warning; the deadline's cancel of it is the deadline's stop, here, as any statement's.
    await setServerKeepalive(client, serverKeepaliveFor(0)).catch((err: unknown) => {
      if (stopped()) throw err
      o.log.warn(
        "could not set migrate's TCP keepalive on the server; if this machine vanishes, its migration lock stays held until the server's own keepalive ends its session (2 hours by default)",
        { err },
      )
    })
    // Before the schema or its table is made: a new install gets nothing in an encoding not UTF8,
    // an existing one nothing its encoding cannot hold.
    const encoding = await assertEncodingTakesMigrations(client, list)
    if (encoding !== null) o.log.warn(notUtf8Warning(encoding), { encoding })
    at = { step: 'lock' }
    await takeMigrationLock(client, withinDeadline(deadline, lockTimeoutMs), o.clock ?? systemClock)
    locked = true
    at = { step: 'prepare' }
    await ensureMigrationsTable(client)
    const applied = await readApplied(client)
    const { pending, newer } = planMigrations(applied, list)
    const waits = { givenUp: 0 }
    for (const m of pending) {
      at = { step: 'next', migration: m }
      if (stopped()) throw new Error('the deadline passed')
      at = { step: 'migration', migration: m, outside: runsOutsideTransaction(m) }
      await applyWithRetries(client, m, o.log, lockTimeoutMs, waits, stopped)
      o.log.info('migration applied', { version: m.version, name: m.name })
      done.push(m.version)
    }
    return { applied: done, version: list.at(-1)?.version ?? 0, newer }
  } catch (e) {
    // A verdict (a pooler, an encoding, a schema newer) stands; a wait or a statement cut short does not.
    const verdict = isAppError(e) && e.code !== 'migration_lock_timeout'
    if (!deadline || !stopped() || verdict) throw e
    throw await stoppedAtDeadline({
      deadline,
      at,
      applied: done,
      session: watch.cutOff ? null : pastDeadline,
      cause: e,
    })
  } finally {
    // Its signals answered first: a cancel still on its way would land on what follows.
    await watch.stop()
    // A session cut off at the deadline is gone, its lock with it; its end may never be answered.
    if (watch.cutOff) await waitAtMost(systemClock, client.end(), 1_000).catch(() => {})
    else if (stopped()) {
      // Past the deadline, a session gone silent since its cancel (a partition) is not waited on:
      // the lock's release (never sent behind a read for the message left unanswered) and the end
      // are bounded, then the socket reset, whose end frees the lock.
      if (locked) await pastDeadline.within(releaseMigrationLock, 2_000)
      await waitAtMost(systemClock, client.end(), 1_000).catch(() => resetSession(client))
    } else {
      try {
        if (locked) await releaseMigrationLock(client)
      } finally {
        await client.end()
      }
    }
  }
}

/**
 * The driver's connect timeout (its words are "timeout expired"), with what it means and what to
 * check; any other error as it is.
 */
function unansweredConnect(e: unknown): unknown {
  if (!(e instanceof Error) || e.message !== 'timeout expired') return e
  return new Error(
    `no answer from the server: the connection was given up after ${CONNECT_TIMEOUT_MS / 1000} s (a server down behind a proxy or pooler, a route that drops the packets): check the host and port in the URL and that the server is up`,
    { cause: e },
  )
}
