// The LISTEN check of one configured database: whether LISTEN holds on the URL a worker listens on, and, on a URL of its own, whether its role may migrate.
import type { DatabaseConfig } from '../config/database-list.ts'
import type { Config, ServeRole } from '../config.ts'
import { hearsOtherSessions } from '../db/listen-probe.ts'
import { SessionClient } from '../db/session-settings.ts'
import { CHANNEL, listeningPid } from '../outbox/listen-session.ts'
import { connectFailure } from './connect-failure.ts'
import { describe, type Findings } from './findings.ts'
import { noteMigrateRole } from './migrate-role-check.ts'

/**
 * Adds to `out` what the listen URL says (`reachable`: the database's URL answered). `label` names
 * the variable of the database's url or listenUrl.
 */
export async function checkListenUrl(
  p: {
    d: DatabaseConfig
    config: Config
    role: ServeRole
    timeoutMs: number
    reachable: boolean
    label: (which: 'url' | 'listenUrl') => string
  },
  out: Findings,
): Promise<void> {
  const { d, config, role, timeoutMs, reachable, label } = p
  // A URL of its own is for LISTEN and migrations, both needing a session; the one URL is listened
  // on only by a role that listens, unless LISTEN_MODE=poll says the deployment polls on purpose.
  const apart = d.listenUrl !== d.url
  const listens = role !== 'api' && config.worker.listenMode === 'auto'
  const which = label(apart ? 'listenUrl' : 'url')
  if (apart || (listens && reachable)) {
    const client = new SessionClient({
      connectionString: d.listenUrl,
      application_name: 'outbox-mailer:check-config',
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
    })
    client.on('error', () => {})
    let connected = false
    try {
      await client.connect()
      connected = true
      // A transaction pooler accepts the LISTEN and loses it with its session: asked as serve asks.
      await client.query(`listen ${CHANNEL}`)
      const pid = await listeningPid(client, timeoutMs)
      const holds =
        pid !== null &&
        (await hearsOtherSessions(client, {
          url: d.listenUrl,
          backendPid: pid,
          applicationName: 'outbox-mailer:check-config',
          timeoutMs,
        })) !== false
      await client.query('unlisten *')
      if (!holds) {
        out.problems.push(
          `database "${d.name}" (${which}): LISTEN does not hold on this connection (a transaction pooler?)${listens ? ': serve would poll instead of being woken' : ''}. ${apart ? `${which} must be a direct (session) URL, for LISTEN and migrations` : `Give this database a direct (session) URL to listen on (${label('listenUrl')}), or set LISTEN_MODE=poll to poll on purpose`}`,
        )
      } else {
        out.checks.push(
          `database "${d.name}" (${which}): ${apart ? 'reachable, ' : ''}LISTEN holds`,
        )
      }
      // A URL of its own is migrate's (the release command), and so most often a third role's.
      if (apart) {
        const where = `database "${d.name}" (${which})`
        const variables = { listen: which, url: label('url') }
        await noteMigrateRole(out, client, where, variables)
      }
    } catch (e) {
      out.problems.push(
        `database "${d.name}" (${which}): ${connected ? `LISTEN could not be checked: ${describe(e)}` : `cannot connect: ${connectFailure(e)}`}`,
      )
    } finally {
      await client.end().catch(() => {})
    }
  }
}
