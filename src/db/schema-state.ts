// Schema state: how a database's applied migrations compare with this binary's, as a verdict, never a throw.
import { isAppError } from '../errors.ts'
import { planMigrations } from './migration-plan.ts'
import { readApplied } from './migration-record.ts'
import { migrations as embedded, type Migration } from './migrations.ts'
import type { Queryable } from './statement-route.ts'

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
  if (!rows[0]?.present) {
    return {
      verdict: 'missing',
      database: null,
      binary,
      missing: list.map((m) => m.name),
      newer: [],
    }
  }
  const applied = await readApplied(q)
  const database = applied.length > 0 ? Math.max(...applied.map((a) => a.version)) : null
  const known = new Set(list.map((m) => m.version))
  const newer = applied.filter((a) => !known.has(a.version)).map((a) => a.version)
  const done = new Set(applied.map((a) => a.version))
  const missing = list.filter((m) => !done.has(m.version)).map((m) => m.name)
  try {
    planMigrations(applied, list)
  } catch (e) {
    if (isAppError(e, 'migration_checksum_mismatch'))
      return { verdict: 'edited', database, binary, missing, newer }
    if (isAppError(e, 'schema_ahead')) return { verdict: 'ahead', database, binary, missing, newer }
    throw e
  }
  if (applied.length === 0) return { verdict: 'missing', database, binary, missing, newer }
  return { verdict: missing.length > 0 ? 'behind' : 'current', database, binary, missing, newer }
}
