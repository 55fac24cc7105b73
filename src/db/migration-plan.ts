// Decides what a database needs from the embedded migrations, and how each file runs: pure, no I/O.
import { createHash } from 'node:crypto'
import { AppError } from '../errors.ts'
import type { Migration } from './migrations.ts'

export const checksumOf = (sqlText: string) => createHash('sha256').update(sqlText).digest('hex')

export interface Applied {
  version: number
  name: string
  checksum: string
  /** Recorded from the file's `--! older-binaries-compatible` line when it was applied. */
  olderBinariesCompatible: boolean
}

// A migration that cannot run in a transaction (CREATE INDEX CONCURRENTLY, which does not block
// writes) says so on a line of its own, and separates its statements with `--! split` lines: each
// is sent alone, since Postgres runs several statements sent together as one transaction.
const NO_TRANSACTION = /^--! no-transaction[ \t]*$/m
const SPLIT = /^--! split[ \t]*$/m

export const runsOutsideTransaction = (m: Migration): boolean => NO_TRANSACTION.test(m.sql)

/** The statements of a migration that runs outside a transaction, in order. */
export const statementsOf = (m: Migration): string[] =>
  m.sql.split(SPLIT).filter((part) => part.replace(/--.*$/gm, '').trim() !== '')

// A migration that binaries released before it keep working with (a new index, a new nullable
// column, a new function) says so on a line of its own; the flag is recorded with it, so a binary
// that does not know the file can still tell. Without the line a migration counts as breaking.
const OLDER_BINARIES_COMPATIBLE = /^--! older-binaries-compatible[ \t]*$/m

export const keepsOlderBinariesWorking = (m: Migration): boolean =>
  OLDER_BINARIES_COMPATIBLE.test(m.sql)

interface MigrationPlan {
  /** Known to this binary, not applied yet, in order. */
  pending: Migration[]
  /** Applied by a newer release, unknown to this binary, each declared compatible with older binaries. */
  newer: number[]
}

/**
 * Why this binary must not migrate or serve a database, the first found in version order:
 * an applied migration it does not know that breaks older binaries, an applied migration of its
 * own that was edited since, or (all else sound) newer migrations applied while one of its own is not.
 */
type MigrationConflict =
  | { kind: 'unknown'; applied: Applied }
  | { kind: 'edited'; migration: Migration }
  | { kind: 'gap'; newer: number; lacks: Migration }

interface MigrationComparison {
  pending: Migration[]
  /** Applied, unknown to this binary: declared compatible, unless the conflict says otherwise. */
  newer: number[]
  conflict: MigrationConflict | null
}

/** How the applied migrations compare with the binary's: a verdict, never a throw. */
export function compareMigrations(
  applied: Applied[],
  list: readonly Migration[],
): MigrationComparison {
  const known = new Map(list.map((m) => [m.version, m]))
  const done = new Set(applied.map((a) => a.version))
  const pending = list.filter((m) => !done.has(m.version))
  const newer = applied.filter((a) => !known.has(a.version)).map((a) => a.version)
  for (const a of applied) {
    const m = known.get(a.version)
    if (!m) {
      if (a.olderBinariesCompatible) continue
      return { pending, newer, conflict: { kind: 'unknown', applied: a } }
    }
    if (checksumOf(m.sql) !== a.checksum) {
      return { pending, newer, conflict: { kind: 'edited', migration: m } }
    }
  }
  // Not a database a newer release of this line migrated: it would have applied these first.
  const conflict: MigrationConflict | null =
    pending.length > 0 && newer.length > 0
      ? { kind: 'gap', newer: newer[0]!, lacks: pending[0]! }
      : null
  return { pending, newer, conflict }
}

/**
 * Decides what to apply; throws on an edited migration, or on a database that has a migration this
 * binary does not know and that did not declare older binaries compatible.
 */
export function planMigrations(applied: Applied[], list: readonly Migration[]): MigrationPlan {
  const { pending, newer, conflict } = compareMigrations(applied, list)
  if (conflict?.kind === 'unknown') {
    const a = conflict.applied
    throw new AppError(
      'schema_ahead',
      `the database has migration ${a.version} (${a.name}) that this binary does not know: it is newer than this binary and changes what older binaries rely on; deploy the newer outbox-mailer instead`,
    )
  }
  if (conflict?.kind === 'edited') {
    throw new AppError(
      'migration_checksum_mismatch',
      `migration ${conflict.migration.name} was changed after it was applied (checksum differs); migrations are forward-only: restore the file and add a new one`,
    )
  }
  if (conflict?.kind === 'gap') {
    throw new AppError(
      'schema_ahead',
      `the database has migration ${conflict.newer} that this binary does not know, but lacks ${conflict.lacks.name}, which it does: deploy the release that migrated it`,
    )
  }
  return { pending, newer }
}
