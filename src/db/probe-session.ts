// Probe session: the LISTEN probe's second, short-lived session, which connects from the moment it is made and sends the notification.
import type { Socket } from 'node:net'
import type pg from 'pg'
import { systemClock, waitAtMost } from '../clock.ts'
import { SessionClient } from './session-settings.ts'

export interface ProbeSession {
  /** Sends a notification on `channel` once connected: false when it could not connect or send, or was dropped. */
  notify(channel: string): Promise<boolean>
  /**
   * Ends the session: a connect still in flight is dropped; a session gone silent since its answer
   * is reset after `timeoutMs`. Once only: later calls wait for the first.
   */
  end(): Promise<void>
}

/**
 * Opens a session to `url` at once, so that its connect, a new server backend and the longest wait
 * of a probe, runs while the caller still sets up its LISTEN session. `signal` (a stop) drops it at
 * once, connected or not: its connect may then never settle, so the stop answers for it.
 */
export function openProbeSession(o: {
  url: string
  applicationName: string
  timeoutMs: number
  signal?: AbortSignal
}): ProbeSession {
  const other = new SessionClient({
    connectionString: o.url,
    application_name: o.applicationName,
    connectionTimeoutMillis: o.timeoutMs,
    query_timeout: o.timeoutMs,
  })
  other.on('error', () => {})
  const dropped = Promise.withResolvers<false>()
  // end() only asks the server to close, which a session still authenticating may not do. A reset,
  // not destroy()'s FIN: a peer that reads nothing (a wedged proxy) notices a FIN only once it reads.
  const drop = () => {
    reset(other)
    other.end().catch(() => {})
    dropped.resolve(false)
  }
  let settled = false
  // Asked after a stop, it opens none.
  const connected = o.signal?.aborted
    ? Promise.resolve(false)
    : Promise.race([
        other.connect().then(
          () => true,
          () => false,
        ),
        dropped.promise,
      ]).finally(() => {
        settled = true
      })
  o.signal?.addEventListener('abort', drop, { once: true })
  let ended: Promise<void> | null = null
  return {
    async notify(channel) {
      if (!(await connected)) return false
      return Promise.race([
        other.query('select pg_notify($1, $2)', [channel, '']).then(
          () => true,
          () => false,
        ),
        dropped.promise,
      ])
    },
    end() {
      ended ??= (async () => {
        o.signal?.removeEventListener('abort', drop)
        // Dropped by a stop, it has ended already (end() again would wait for an end long past).
        if (o.signal?.aborted) return
        if (!settled) return drop()
        // A session gone silent since its answer would keep end() waiting for the server.
        await waitAtMost(systemClock, other.end(), o.timeoutMs).catch(() => reset(other))
      })()
      return ended
    },
  }
}

function reset(client: pg.Client) {
  const stream = (client as unknown as { connection?: { stream?: Partial<Socket> } }).connection
    ?.stream
  if (stream?.resetAndDestroy) stream.resetAndDestroy()
  else stream?.destroy?.()
}
