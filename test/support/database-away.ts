// A database that is away: a Kysely on a port nobody listens on, so every connect is refused.
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { Database } from '../../src/db/schema.ts'
import { closedPort } from './closed-port.ts'

/** The caller destroys it. A connect that is not refused at once gives up after 2 s. */
export async function databaseAway(): Promise<Kysely<Database>> {
  const pool = new pg.Pool({
    host: '127.0.0.1',
    port: await closedPort(),
    user: 'outbox',
    database: 'outbox',
    connectionTimeoutMillis: 2_000,
  })
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
}
