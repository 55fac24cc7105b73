// Schema state: how a database's applied migrations compare with this binary's: a verdict to report, or a refusal to serve.
import { AppError } from '../errors.ts'
import { compareMigrations, planMigrations } from './migration-plan.ts'
import { readApplied, readAppliedAndWrites } from './migration-record.ts'
import { migrations as embedded, type Migration } from './migrations.ts'
import type { Queryable } from './queryable.ts'
import { isSchemaMissingSqlstate } from './sqlstate.ts'

export type SchemaVerdict = 'current' | 'behind' | 'ahead' | 'missing' | 'edited'

export interface SchemaState {
  /**
   * current: serve runs on it (newer migrations declared compatible allowed); behind: migrate
   * applies what is missing; ahead: a newer release migrated it; missing: never migrated; edited:
   * an applied migration differs from this binary's copy.
   */
  verdict: SchemaVerdict
  /** The highest migration the database records, null when it has none. */
  database: number | null
  /** The highest migration this binary embeds. */
  binary: number
  /** Migrations of this binary the database lacks, by name. */
  missing: string[]
  /** Migrations of a newer release the database has, which this binary does not know. */
  newer: number[]
}

/**
 * Two statements: whether mailer.schema_migrations exists (asked, not found by an error, which would
 * abort a caller's transaction), then what it records.
 */
export async function readSchemaState(
  q: Queryable,
  list: readonly Migration[] = embedded,
): Promise<SchemaState> {
  const binary = list.at(-1)?.version ?? 0
  const { rows } = await q.query<{ present: boolean }>(
    `select to_regclass('mailer.schema_migrations') is not null as present`,
  )
  // No table: nothing applied, so every migration of the binary is missing.
  const applied = rows[0]?.present ? await readApplied(q) : []
  const database = applied.length > 0 ? Math.max(...applied.map((a) => a.version)) : null
  const { pending, newer, conflict } = compareMigrations(applied, list)
  const missing = pending.map((m) => m.name)
  const state = { database, binary, missing, newer }
  if (conflict) return { verdict: conflict.kind === 'edited' ? 'edited' : 'ahead', ...state }
  if (applied.length === 0) return { verdict: 'missing', ...state }
  return { verdict: missing.length > 0 ? 'behind' : 'current', ...state }
}

/**
 * Throws a clear AppError unless the database has every migration this binary knows and none it
 * does not, except newer ones declared compatible with older binaries: it returns their versions.
 */
export async function assertSchemaCurrent(
  pool: Queryable,
  dbName: string,
  list: readonly Migration[] = embedded,
  o: { lockTimeoutMs?: number } = {},
): Promise<{ newer: number[] }> {
  const { newer } = await assertSchemaCurrentAndWrites(pool, dbName, list, o)
  return { newer }
}

/**
 * assertSchemaCurrent, whether this session would refuse a write as read-only (null: not known) and
 * the database's encoding, read by the same one statement: readiness runs this.
 */
export async function assertSchemaCurrentAndWrites(
  pool: Queryable,
  dbName: string,
  list: readonly Migration[] = embedded,
  o: { lockTimeoutMs?: number } = {},
): Promise<{ newer: number[]; refusesWrites: boolean | null; encoding: string | null }> {
  // One statement: a missing table or schema is its own answer.
  let read: Awaited<ReturnType<typeof readAppliedAndWrites>>
  try {
    read = await readAppliedAndWrites(pool, o)
  } catch (e) {
    if (!isSchemaMissingSqlstate((e as { code?: unknown } | null)?.code)) throw e
    throw new AppError(
      'schema_missing',
      `database "${dbName}" has no mailer schema: run \`outbox-mailer migrate\` first`,
    )
  }
  const { pending, newer } = planMigrations(read.applied, list)
  if (pending.length > 0) {
    throw new AppError(
      'schema_outdated',
      `database "${dbName}" lacks ${pending.length} migration(s) (${pending.map((m) => m.name).join(', ')}): run \`outbox-mailer migrate\` first`,
    )
  }
  return { newer, refusesWrites: read.refusesWrites, encoding: read.encoding }
}
