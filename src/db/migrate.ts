// Applies embedded migrations under an advisory lock, each in a transaction or statement by statement.
import { type Clock, systemClock } from '../clock.ts'
import type { Logger } from '../log.ts'
import { applyWithRetries } from './migration-apply.ts'
import {
  assertOwnSession,
  MIGRATE_APPLICATION_NAME,
  releaseMigrationLock,
  takeMigrationLock,
} from './migration-lock.ts'
import { planMigrations } from './migration-plan.ts'
import { ensureMigrationsTable, readApplied } from './migration-record.ts'
import { migrations as embedded, type Migration } from './migrations.ts'
import { assertMigrationsFit } from './server-encoding.ts'
import { CONNECT_TIMEOUT_MS, SessionClient } from './session-settings.ts'

interface MigrateOptions {
  url: string
  log: Logger
  /** How long to wait for another migrator's lock, or for a table lock, before failing. */
  lockTimeoutMs?: number
  migrations?: readonly Migration[]
  clock?: Clock
}

interface MigrateResult {
  applied: number[]
  version: number
  /** Applied by a newer release, unknown to this binary, and declared to keep older binaries working. */
  newer: number[]
}

/**
 * Applies pending migrations while holding a session advisory lock: each in its own transaction,
 * or statement by statement when the file says `--! no-transaction`.
 */
export async function migrate(o: MigrateOptions): Promise<MigrateResult> {
  const list = o.migrations ?? embedded
  const client = new SessionClient({
    connectionString: o.url,
    application_name: MIGRATE_APPLICATION_NAME,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  })
  await client.connect().catch((e: unknown) => {
    throw unansweredConnect(e)
  })
  try {
    await assertOwnSession(client, o.url)
    const lockTimeoutMs = Math.max(1, Math.round(o.lockTimeoutMs ?? 60_000))
    // A role's or database's statement_timeout (managed Postgres often sets one) would cancel a
    // long index build, and every rerun of it; waits stay bounded by lock_timeout.
    await client.query(`set statement_timeout = 0; set lock_timeout = ${lockTimeoutMs}`)
    // Before the schema or its table is made: an encoding that cannot hold them gets nothing.
    await assertMigrationsFit(client, list)
    await takeMigrationLock(client, lockTimeoutMs, o.clock ?? systemClock)
    try {
      await ensureMigrationsTable(client)
      const applied = await readApplied(client)
      const { pending, newer } = planMigrations(applied, list)
      const done: number[] = []
      const waits = { givenUp: 0 }
      for (const m of pending) {
        await applyWithRetries(client, m, o.log, lockTimeoutMs, waits)
        o.log.info('migration applied', { version: m.version, name: m.name })
        done.push(m.version)
      }
      return { applied: done, version: list.at(-1)?.version ?? 0, newer }
    } finally {
      await releaseMigrationLock(client)
    }
  } finally {
    await client.end()
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
