// The session settings our connections ask for at startup, so what we parse does not depend on the role's or database's, and the name they go by.
import pg from 'pg'
import { readTimestampsAsDates } from './timestamp-reading.ts'

/**
 * Startup parameters (a GUC each; a client's override ALTER ROLE/DATABASE … SET and postgresql.conf).
 * pg parses timestamptz text as ISO only: under `DateStyle = 'SQL, DMY'` every Date read was Invalid
 * and GET /v1/outbox answered 500. ISO output carries its UTC offset, so TimeZone needs no pin, and
 * no statement of ours returns an interval, so IntervalStyle neither (and PgBouncer, by default,
 * refuses a startup parameter it does not track: of these it tracks datestyle and timezone only).
 * A transaction pooler sets a tracked parameter on each server session it lends the client.
 */
/**
 * How long our connections wait for a server to answer their connect (the pool's, the LISTEN
 * session's, migrate's): a server down behind a proxy or pooler that accepts the connection, or a
 * route that drops packets, would otherwise hold them without a word.
 */
export const CONNECT_TIMEOUT_MS = 10_000

export const SESSION_STARTUP_PARAMETERS: Readonly<Record<string, string>> = { datestyle: 'ISO' }

/** What openDb's pool connections and its shared LISTEN session are made with. */
export function connectionSettings(url: string) {
  return {
    connectionString: url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    // No statement may hang a worker loop: a lock wait fails and is retried instead (the API sets
    // tighter limits per query); a half-open socket fails the query on the client side. A pooler
    // that refuses statement_timeout at startup (PgBouncer) leaves only query_timeout.
    statement_timeout: 30_000,
    query_timeout: 60_000,
  }
}

type StartupConf = () => Record<string, string>

/** The application_name each client was made with, which its startup message sends. */
const ownNames = new WeakMap<pg.Client, string>()

/**
 * `Base` whose connections send SESSION_STARTUP_PARAMETERS with their startup message, and the
 * application_name they were made with even when the URL sets one (`?application_name=myapp`, as
 * hosted Postgres dashboards write it): pg lets the URL's replace it, and `status`, DESIGN.md and
 * the operator's own pg_stat_activity queries find our sessions by our names
 * (`outbox-mailer:listener`). A client made with none keeps the URL's (or PGAPPNAME). Its
 * timestamps read as Dates always, ±infinity included (timestamp-reading.ts).
 */
export function isoSessionClient(Base: typeof pg.Client): typeof pg.Client {
  // getStartupConf is pg's own (lib/client.js), absent from its type declarations. A pg@9 that
  // renamed it would leave this override unused and every session in the role's DateStyle:
  // test/api/session-settings.test.ts fails then (checked with the override renamed: 6 of 10 fail).
  const startupConf = (Base.prototype as unknown as { getStartupConf: StartupConf }).getStartupConf
  class IsoSessionClient extends Base {
    constructor(config?: string | pg.ClientConfig) {
      super(config)
      readTimestampsAsDates(this)
      const name = typeof config === 'object' ? config.application_name : undefined
      if (name) ownNames.set(this, name)
    }
  }
  Object.defineProperty(IsoSessionClient.prototype, 'getStartupConf', {
    value(this: pg.Client) {
      const name = ownNames.get(this)
      return {
        ...startupConf.call(this),
        ...(name && { application_name: name }),
        ...SESSION_STARTUP_PARAMETERS,
      }
    },
  })
  return IsoSessionClient
}

/**
 * pg's Client asking for SESSION_STARTUP_PARAMETERS: every connection of ours that openDb's pool
 * does not make (its clients also prepare statements and retire by read-only eras), so none depends
 * on the role's or database's DateStyle. Of these, `status` and `check-config` read rows (their
 * timestamps as epochs today), and migrate's session runs our migrations, any statement of which
 * that turns a timestamp into text (a backfill, a default) writes it as the session's DateStyle
 * says. The LISTEN sessions (serve's on a URL of its own, check-config's check), the LISTEN probe's
 * second session (pg_notify) and dev's (DDL and a count on its own Postgres, which initdb set to ISO)
 * read none. One rule for all is smaller than a case for each, and costs nothing: the parameter
 * rides the startup message, and a pooler (PgBouncer) accepts it.
 */
export const SessionClient: typeof pg.Client = isoSessionClient(pg.Client)
