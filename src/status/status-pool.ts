// status's connection to one database: a pool of one, bounded by --timeout, prepared for nothing, and a Kysely over it whose transactions lend the migration reader pg's interface.
import { CompiledQuery, Kysely, PostgresDialect, type Transaction } from 'kysely'
import pg from 'pg'
import type { Queryable } from '../db/queryable.ts'
import type { Database } from '../db/schema.ts'
import { SessionClient } from '../db/session-settings.ts'

const STATUS_APPLICATION_NAME = 'outbox-mailer:status'

/**
 * A pool of its own, not openDb's: openDb asks for statement_timeout as a startup parameter, which a
 * transaction pooler refuses (openDb then connects again without it: a second connect within
 * --timeout); and this one-shot bounds connecting by --timeout, keeps no connection open and
 * prepares nothing. Both bounds are set per transaction instead (timedTransaction).
 */
export function openStatusDb(url: string, timeoutMs: number) {
  const pool = new pg.Pool({
    connectionString: url,
    application_name: STATUS_APPLICATION_NAME,
    Client: SessionClient,
    max: 1,
    connectionTimeoutMillis: timeoutMs,
    // The server's statement_timeout bounds a slow statement; this bounds a socket gone silent.
    query_timeout: timeoutMs + 1_000,
  })
  // A connection lost while idle surfaces through the next query; the pool's event must not crash us.
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  return {
    db,
    close: async () => {
      await db.destroy().catch(() => {})
      // Kysely ends the pool only if it ever took a connection from it.
      if (!pool.ended) await pool.end().catch(() => {})
    },
  }
}

/** The migration reader takes pg's interface; inside the read-only transaction it goes through Kysely. */
export function queryableOf(trx: Transaction<Database>): Queryable {
  return {
    query: async (text, values) => {
      const r = await trx.executeQuery(CompiledQuery.raw(text, values ?? []))
      return { rows: r.rows } as never
    },
  }
}
