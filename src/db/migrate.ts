// Applies embedded migrations under an advisory lock, and checks a database's schema before serving.
import { createHash } from 'node:crypto'
import pg from 'pg'
import { AppError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { migrations as embedded, type Migration } from './migrations.ts'
import type { Queryable } from './statement-route.ts'

// Arbitrary constant shared by every outbox-mailer binary: "mailer" in ASCII.
const MIGRATION_LOCK_KEY = 0x6d61696c6572
const APPLICATION_NAME = 'outbox-mailer:migrate'

export const checksumOf = (sqlText: string) => createHash('sha256').update(sqlText).digest('hex')

interface Applied {
  version: number
  name: string
  checksum: string
}

export interface MigrateOptions {
  url: string
  log: Logger
  /** How long to wait for another migrator's lock, or for a table lock, before failing. */
  lockTimeoutMs?: number
  migrations?: readonly Migration[]
}

export interface MigrateResult {
  applied: number[]
  version: number
}

/** Applies pending migrations, each in its own transaction, while holding a session advisory lock. */
export async function migrate(o: MigrateOptions): Promise<MigrateResult> {
  const list = o.migrations ?? embedded
  const client = new pg.Client({ connectionString: o.url, application_name: APPLICATION_NAME })
  await client.connect()
  try {
    await client.query(`set lock_timeout = ${Math.max(1, Math.round(o.lockTimeoutMs ?? 60_000))}`)
    try {
      await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    } catch (e) {
      if ((e as { code?: string }).code === '55P03') {
        throw new AppError(
          'migration_lock_timeout',
          'another migrator holds the migration lock; try again once it has finished',
          {},
          { cause: e },
        )
      }
      throw e
    }
    try {
      await ensureMigrationsTable(client)
      const applied = await readApplied(client)
      const pending = pendingMigrations(applied, list)
      const done: number[] = []
      for (const m of pending) {
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
            { cause: e },
          )
        }
        o.log.info('migration applied', { version: m.version, name: m.name })
        done.push(m.version)
      }
      return { applied: done, version: list.at(-1)?.version ?? 0 }
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
    }
  } finally {
    await client.end()
  }
}

/** Decides what to apply; throws on an edited migration or a database ahead of this binary. */
export function pendingMigrations(applied: Applied[], list: readonly Migration[]): Migration[] {
  const known = new Map(list.map((m) => [m.version, m]))
  for (const a of applied) {
    const m = known.get(a.version)
    if (!m) {
      throw new AppError(
        'schema_ahead',
        `the database has migration ${a.version} (${a.name}) that this binary does not know: it is newer than this binary; deploy the newer outbox-mailer instead`,
      )
    }
    if (checksumOf(m.sql) !== a.checksum) {
      throw new AppError(
        'migration_checksum_mismatch',
        `migration ${m.name} was changed after it was applied (checksum differs); migrations are forward-only: restore the file and add a new one`,
      )
    }
  }
  const done = new Set(applied.map((a) => a.version))
  return list.filter((m) => !done.has(m.version))
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
}

async function readApplied(client: Queryable): Promise<Applied[]> {
  const { rows } = await client.query<Applied>(
    'select version, name, checksum from mailer.schema_migrations order by version',
  )
  return rows
}

async function recordMigration(client: pg.Client, m: Migration) {
  await client.query(
    'insert into mailer.schema_migrations (version, name, checksum) values ($1, $2, $3)',
    [m.version, m.name, checksumOf(m.sql)],
  )
}

/** Throws a clear AppError unless the database's schema is exactly what this binary expects. */
export async function assertSchemaCurrent(
  pool: Queryable,
  dbName: string,
  list: readonly Migration[] = embedded,
): Promise<void> {
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
  const pending = pendingMigrations(applied, list)
  if (pending.length > 0) {
    throw new AppError(
      'schema_outdated',
      `database "${dbName}" lacks ${pending.length} migration(s) (${pending.map((m) => m.name).join(', ')}): run \`outbox-mailer migrate\` first`,
    )
  }
}
