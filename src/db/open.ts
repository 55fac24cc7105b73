// Opens one database: a pg pool (application_name outbox-mailer) wrapped in Kysely.
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { Logger } from '../log.ts'
import { preparingClient } from './prepared-statements.ts'
import type { Database } from './schema.ts'

export const POOL_APPLICATION_NAME = 'outbox-mailer'

export interface DbHandle {
  name: string
  pool: pg.Pool
  db: Kysely<Database>
  close(): Promise<void>
}

export interface OpenOptions {
  name: string
  url: string
  maxConnections?: number
  log: Logger
  applicationName?: string
  /** How long an idle connection above the one kept stays open (default 10 s). */
  idleTimeoutMs?: number
}

export function openDb(o: OpenOptions): DbHandle {
  const pool = new pg.Pool({
    connectionString: o.url,
    application_name: o.applicationName ?? POOL_APPLICATION_NAME,
    max: o.maxConnections ?? 8,
    // An idle worker needs one connection at most: the rest go back to the server after 10 s idle.
    // One stays, so a row after a quiet spell is claimed on an open, authenticated connection with
    // the claim's plan cached, not after a reconnect (pickup after 11 s idle: 36 → 8 ms, bench).
    min: 1,
    idleTimeoutMillis: o.idleTimeoutMs ?? 10_000,
    connectionTimeoutMillis: 10_000,
    // Recycle before proxies (e.g. Fly's) close long-lived connections under us.
    maxLifetimeSeconds: 600,
    keepAlive: true,
    // No statement may hang a worker loop: a lock wait fails and is retried instead (the API sets
    // tighter limits per query); a half-open socket fails the query on the client side.
    statement_timeout: 30_000,
    query_timeout: 60_000,
    // The hot path's statements are prepared per connection, unless a pooler cannot keep them.
    Client: preparingClient((err) =>
      o.log.warn(
        'the database connection does not keep prepared statements (a transaction pooler?); sending every statement unnamed from now on',
        { db: o.name, err },
      ),
    ),
  })
  // An idle client's socket error must not crash the process; the next checkout reconnects.
  pool.on('error', (err) => o.log.warn('database pool connection error', { db: o.name, err }))
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  let closed = false
  return {
    name: o.name,
    pool,
    db,
    close: async () => {
      if (closed) return
      closed = true
      await db.destroy()
    },
  }
}
