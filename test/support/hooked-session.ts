// A shared LISTEN session whose clients' statements pass through a test's hook: a session cut, or answered elsewhere, at a chosen statement.
import type pg from 'pg'
import type { SharedSession } from '../../src/db/shared-session.ts'

export interface HookedStatement {
  /** The session's client the statement was sent on. */
  client: pg.Client
  /** The statement's text (of a query config, its `text`). */
  text: string
  values: unknown[] | undefined
  /** Sends it on `client`, as it would have been. */
  run: () => Promise<unknown>
}

/** `real`, each of whose new clients sends its statements through `hook`, which answers for them. */
export function hookedSession(
  real: SharedSession,
  hook: (s: HookedStatement) => Promise<unknown>,
): SharedSession {
  return {
    ...real,
    newClient(applicationName) {
      const client = real.newClient(applicationName)
      const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>
      client.query = ((...args: unknown[]) =>
        hook({
          client,
          text:
            typeof args[0] === 'string' ? args[0] : String((args[0] as { text?: string })?.text),
          values: Array.isArray(args[1]) ? args[1] : undefined,
          run: () => query(...args),
        })) as pg.Client['query']
      return client
    },
  }
}
