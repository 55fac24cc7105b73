// The session settings our connections ask for at startup, so what we parse does not depend on the role's or database's.
import type pg from 'pg'

/**
 * Startup parameters (a GUC each; a client's override ALTER ROLE/DATABASE … SET and postgresql.conf).
 * pg parses timestamptz text as ISO only: under `DateStyle = 'SQL, DMY'` every Date read was Invalid
 * and GET /v1/outbox answered 500. ISO output carries its UTC offset, so TimeZone needs no pin, and
 * no statement of ours returns an interval, so IntervalStyle neither (and PgBouncer, by default,
 * refuses a startup parameter it does not track: of these it tracks datestyle and timezone only).
 * A transaction pooler sets a tracked parameter on each server session it lends the client.
 */
export const SESSION_STARTUP_PARAMETERS: Readonly<Record<string, string>> = { datestyle: 'ISO' }

type StartupConf = () => Record<string, string>

/** `Base` whose connections send SESSION_STARTUP_PARAMETERS with their startup message. */
export function isoSessionClient(Base: typeof pg.Client): typeof pg.Client {
  // getStartupConf is pg's own (lib/client.js), absent from its type declarations.
  const startupConf = (Base.prototype as unknown as { getStartupConf: StartupConf }).getStartupConf
  class IsoSessionClient extends Base {}
  Object.defineProperty(IsoSessionClient.prototype, 'getStartupConf', {
    value(this: pg.Client) {
      return { ...startupConf.call(this), ...SESSION_STARTUP_PARAMETERS }
    },
  })
  return IsoSessionClient
}
