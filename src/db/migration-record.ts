// mailer.schema_migrations: created if absent, read, and added to as each migration is applied.
import type pg from 'pg'
import { type Applied, checksumOf, keepsOlderBinariesWorking } from './migration-plan.ts'
import type { Migration } from './migrations.ts'
import type { Queryable } from './queryable.ts'

// Bootstraps the bookkeeping table; runs under the advisory lock so concurrent migrators do not race.
export async function ensureMigrationsTable(client: pg.Client) {
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
  return (await readAppliedAndWrites(client)).applied
}

/**
 * readApplied's statement, which also says whether a write on this session would be refused as
 * read-only (sessionRefusesWrites's question, asked in the same statement: readiness's schema check
 * costs no second one), and the database's encoding (server-encoding.ts: one not UTF8 is warned
 * of). Both null when the table has no row.
 */
export async function readAppliedAndWrites(
  client: Queryable,
  o: { lockTimeoutMs?: number } = {},
): Promise<{ applied: Applied[]; refusesWrites: boolean | null; encoding: string | null }> {
  // With a lock timeout: set local to the one implicit transaction of a two-statement simple query
  // (no parameters), so the session (the worker's, shared) keeps its own setting after it.
  const bound =
    o.lockTimeoutMs === undefined
      ? ''
      : `select set_config('lock_timeout', '${Math.max(1, Math.round(o.lockTimeoutMs))}', true); `
  // Through to_jsonb: a database that no binary with the column has migrated yet lacks it.
  const answer = await client.query<Applied & { refusesWrites: boolean; serverEncoding: string }>(
    `${bound}select version, name, checksum,
            coalesce((to_jsonb(s) ->> 'older_binaries_compatible')::boolean, false)
              as "olderBinariesCompatible",
            current_setting('transaction_read_only')::boolean as "refusesWrites",
            current_setting('server_encoding') as "serverEncoding"
       from mailer.schema_migrations s order by version`,
  )
  // Two statements answer with one result each: the read's is the last.
  const { rows } = Array.isArray(answer) ? (answer.at(-1) as typeof answer) : answer
  return {
    applied: rows.map(({ refusesWrites: _, serverEncoding: __, ...applied }) => applied),
    refusesWrites: rows[0]?.refusesWrites ?? null,
    encoding: rows[0]?.serverEncoding ?? null,
  }
}

/** Records a migration as applied, with its checksum and whether it keeps older binaries working. */
export async function recordMigration(client: pg.Client, m: Migration) {
  await client.query(
    `insert into mailer.schema_migrations (version, name, checksum, older_binaries_compatible)
     values ($1, $2, $3, $4)`,
    [m.version, m.name, checksumOf(m.sql), keepsOlderBinariesWorking(m)],
  )
}
