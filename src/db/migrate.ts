// Applies embedded migrations under an advisory lock, and checks a database's schema before serving.
import pg from 'pg'
import { type Clock, systemClock } from '../clock.ts'
import { AppError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { hearsOtherSessions } from './listen-probe.ts'
import {
  type Applied,
  checksumOf,
  keepsOlderBinariesWorking,
  planMigrations,
  runsOutsideTransaction,
  statementsOf,
} from './migration-plan.ts'
import { migrations as embedded, type Migration } from './migrations.ts'
import type { Queryable } from './statement-route.ts'

// Arbitrary constant shared by every outbox-mailer binary: "mailer" in ASCII.
const MIGRATION_LOCK_KEY = 0x6d61696c6572
const APPLICATION_NAME = 'outbox-mailer:migrate'

export interface MigrateOptions {
  url: string
  log: Logger
  /** How long to wait for another migrator's lock, or for a table lock, before failing. */
  lockTimeoutMs?: number
  migrations?: readonly Migration[]
  clock?: Clock
}

export interface MigrateResult {
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
  const client = new pg.Client({ connectionString: o.url, application_name: APPLICATION_NAME })
  await client.connect()
  try {
    await assertOwnSession(client, o.url)
    const lockTimeoutMs = Math.max(1, Math.round(o.lockTimeoutMs ?? 60_000))
    // A role's or database's statement_timeout (managed Postgres often sets one) would cancel a
    // long index build, and every rerun of it; waits stay bounded by lock_timeout.
    await client.query(`set statement_timeout = 0; set lock_timeout = ${lockTimeoutMs}`)
    await takeMigrationLock(client, lockTimeoutMs, o.clock ?? systemClock)
    try {
      await ensureMigrationsTable(client)
      const applied = await readApplied(client)
      const { pending, newer } = planMigrations(applied, list)
      const done: number[] = []
      for (const m of pending) {
        if (runsOutsideTransaction(m)) await applyOutsideTransaction(client, m)
        else await applyInTransaction(client, m)
        o.log.info('migration applied', { version: m.version, name: m.name })
        done.push(m.version)
      }
      return { applied: done, version: list.at(-1)?.version ?? 0, newer }
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
    }
  } finally {
    await client.end()
  }
}

/**
 * Refuses a transaction pooler before anything is set or locked: its settings would stay on a
 * server session the pooler lends the application next, and its session lock could be left where
 * no later migrate can free it. Only a session of its own hears another session's notification.
 */
async function assertOwnSession(client: pg.Client, url: string) {
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid')
  const own = await hearsOtherSessions(client, {
    url,
    backendPid: rows[0]!.pid,
    applicationName: APPLICATION_NAME,
    timeoutMs: 5_000,
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
async function takeMigrationLock(client: pg.Client, timeoutMs: number, clock: Clock) {
  const deadline = clock.now() + timeoutMs
  for (let delayMs = 50; ; delayMs = Math.min(delayMs * 2, 1_000)) {
    const { rows } = await client.query<{ locked: boolean }>(
      'select pg_try_advisory_lock($1) as locked',
      [MIGRATION_LOCK_KEY],
    )
    if (rows[0]?.locked) return
    const left = deadline - clock.now()
    if (left <= 0) {
      throw new AppError(
        'migration_lock_timeout',
        'another migrator holds the migration lock; try again once it has finished',
      )
    }
    await clock.sleep(Math.min(delayMs, left))
  }
}

async function applyInTransaction(client: pg.Client, m: Migration) {
  await client.query('begin')
  try {
    await client.query(m.sql)
    await recordMigration(client, m)
    await client.query('commit')
  } catch (e) {
    await client.query('rollback')
    throw new AppError(
      'internal',
      `migration ${m.name} failed: ${(e as Error).message}`,
      {},
      {
        cause: e,
      },
    )
  }
}

// Each statement commits on its own, so a failure leaves the earlier ones applied: such a file is
// written so that running it again from the start completes it (drop … if exists, then create).
async function applyOutsideTransaction(client: pg.Client, m: Migration) {
  try {
    for (const statement of statementsOf(m)) await client.query(statement)
    await recordMigration(client, m)
  } catch (e) {
    throw new AppError(
      'internal',
      `migration ${m.name} failed: ${(e as Error).message} (it runs outside a transaction and is not recorded as applied: run migrate again to complete it)`,
      {},
      { cause: e },
    )
  }
}

// Bootstraps the bookkeeping table; runs under the advisory lock so concurrent migrators do not race.
async function ensureMigrationsTable(client: pg.Client) {
  await client.query(`
    create schema if not exists mailer;
    create table if not exists mailer.schema_migrations (
      version    integer primary key,
      name       text not null,
      checksum   text not null,
      applied_at timestamptz not null default now()
    )`)
  // Added after the first releases, which insert rows without it: their migrations count as breaking.
  // Checked first: ALTER TABLE takes an exclusive lock even when the column exists, and readiness
  // reads this table.
  const { rows } = await client.query(
    `select 1 from pg_attribute
      where attrelid = 'mailer.schema_migrations'::regclass
        and attname = 'older_binaries_compatible' and not attisdropped`,
  )
  if (rows.length === 0) {
    await client.query(`alter table mailer.schema_migrations
      add column if not exists older_binaries_compatible boolean not null default false`)
  }
}

/** The migrations the database records as applied, in order; throws 42P01/3F000 when it has none. */
export async function readApplied(client: Queryable): Promise<Applied[]> {
  // Through to_jsonb: a database that no binary with the column has migrated yet lacks it.
  const { rows } = await client.query<Applied>(
    `select version, name, checksum,
            coalesce((to_jsonb(s) ->> 'older_binaries_compatible')::boolean, false)
              as "olderBinariesCompatible"
       from mailer.schema_migrations s order by version`,
  )
  return rows
}

async function recordMigration(client: pg.Client, m: Migration) {
  await client.query(
    `insert into mailer.schema_migrations (version, name, checksum, older_binaries_compatible)
     values ($1, $2, $3, $4)`,
    [m.version, m.name, checksumOf(m.sql), keepsOlderBinariesWorking(m)],
  )
}

/**
 * Throws a clear AppError unless the database has every migration this binary knows and none it
 * does not, except newer ones declared compatible with older binaries: it returns their versions.
 */
export async function assertSchemaCurrent(
  pool: Queryable,
  dbName: string,
  list: readonly Migration[] = embedded,
): Promise<{ newer: number[] }> {
  // One statement (readiness runs this): a missing table or schema is its own answer.
  let applied: Applied[]
  try {
    applied = await readApplied(pool)
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    if (code !== '42P01' && code !== '3F000') throw e
    throw new AppError(
      'schema_missing',
      `database "${dbName}" has no mailer schema: run \`outbox-mailer migrate\` first`,
    )
  }
  const { pending, newer } = planMigrations(applied, list)
  if (pending.length > 0) {
    throw new AppError(
      'schema_outdated',
      `database "${dbName}" lacks ${pending.length} migration(s) (${pending.map((m) => m.name).join(', ')}): run \`outbox-mailer migrate\` first`,
    )
  }
  return { newer }
}
