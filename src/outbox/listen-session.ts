// ListenSession: opens a session that LISTENs on the outbox channel, and tells it from a transaction pooler's.
import type pg from 'pg'
import { type Clock, waitAtMost } from '../clock.ts'
import { hearsOtherSessions } from '../db/listen-probe.ts'
import { openProbeSession } from '../db/probe-session.ts'
import { CONNECT_TIMEOUT_MS, SessionClient } from '../db/session-settings.ts'
import type { SharedSession } from '../db/shared-session.ts'
import type { Logger } from '../log.ts'
import type { EngineEventHandler } from './events.ts'
import { tellsOfHeldOwedRows } from './held-owed-rows.ts'
import { tellsOfWorkerStop } from './worker-stopped-notice.ts'

export const LISTENER_APPLICATION_NAME = 'outbox-mailer:listener'
/**
 * The probe's second, short-lived session (connect, notify, end): named apart, so that status's
 * count of LISTEN sessions, and whoever looks for a worker's LISTEN session in pg_stat_activity,
 * never takes it for one while a listener sets up.
 */
export const LISTEN_PROBE_APPLICATION_NAME = 'outbox-mailer:listen-probe'
export const CHANNEL = 'mailer_outbox'

/**
 * A client for the LISTEN session, not connected yet, that wakes on the channel's notifications;
 * `lost` resolves when its connection fails or ends.
 */
export function newListenClient(d: {
  db: string
  url: string
  log: Logger
  wake: (reason: 'notification', rowId?: string) => void
  owedRowsHeld?: (() => void) | undefined
  workerStopped?: (() => void) | undefined
  onEvent?: EngineEventHandler | undefined
  shared?: SharedSession | null | undefined
}): { client: pg.Client; lost: Promise<void> } {
  const client =
    d.shared?.newClient(LISTENER_APPLICATION_NAME) ??
    new SessionClient({
      connectionString: d.url,
      application_name: LISTENER_APPLICATION_NAME,
      keepAlive: true,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    })
  const lost = Promise.withResolvers<void>()
  client.on('error', (err) => {
    d.log.warn('listener connection error', { db: d.db, err })
    lost.resolve()
  })
  client.on('end', () => lost.resolve())
  client.on('notification', (n) => {
    if (n.channel !== CHANNEL) return
    d.onEvent?.({ type: 'notification', db: d.db })
    // Before its wake: the loop the wake turns finds the ask owed (block-naming.ts).
    if (tellsOfWorkerStop(n.payload)) d.workerStopped?.()
    d.wake('notification', notifiedRowId(n.payload))
    if (tellsOfHeldOwedRows(n.payload)) d.owedRowsHeld?.()
  })
  return { client, lost: lost.promise }
}

/**
 * The row a notification names (sql/0030: the id of the one row its transaction inserted so far),
 * or undefined for an empty hint or anything that is not an id.
 */
export function notifiedRowId(payload: string | undefined): string | undefined {
  return payload !== undefined && /^[1-9][0-9]{0,17}$/.test(payload) ? payload : undefined
}

/**
 * Connects the client and LISTENs: its backend pid once it is sure to hear notifications, null
 * when it is not (a transaction pooler). Throws when a step fails or goes unanswered, and when
 * `signal` aborts first.
 */
export async function connectListening(
  client: pg.Client,
  o: { url: string; clock: Clock; checkTimeoutMs: number; signal: AbortSignal },
): Promise<number | null> {
  const { checkTimeoutMs } = o
  // A stop must not wait out a connect to a server that does not answer (10 s): it drops the
  // client, whose connect then never settles, so the start is raced against the stop.
  const dropped = Promise.withResolvers<never>()
  const abandon = () => {
    destroyClient(client)
    dropped.reject(new Error('listener stopped while connecting'))
  }
  o.signal.addEventListener('abort', abandon)
  try {
    return await Promise.race([
      (async () => {
        await client.connect()
        // The probe's second session connects while this one LISTENs and is checked: a new
        // server backend is the longest wait of a start's LISTEN, and it no longer comes after
        // the rest. Only once this session is connected, so that a role allowed one connection
        // gives it to the LISTEN session. A stop drops it too: none of ours outlives the stop.
        const probe = { url: o.url, timeoutMs: checkTimeoutMs, signal: o.signal }
        const second = openProbeSession({
          ...probe,
          applicationName: LISTEN_PROBE_APPLICATION_NAME,
        })
        try {
          // A session that goes silent while it is set up is reconnected (these throw): each
          // statement on it gets the check's bound, as a check does.
          await waitAtMost(o.clock, client.query(`listen ${CHANNEL}`), checkTimeoutMs)
          // Behind a transaction pooler the LISTEN lands on some other server session, or on
          // one the pooler lends this client only while a transaction runs. Only an answer says so.
          const listening = await listeningPid(client, checkTimeoutMs)
          if (listening === null) return null
          const heard = await hearsOtherSessions(client, {
            ...probe,
            backendPid: listening,
            applicationName: LISTEN_PROBE_APPLICATION_NAME,
            session: second,
          })
          return heard === false ? null : listening
        } finally {
          // Not waited for: a setup that failed reconnects without waiting for its end.
          void second.end()
        }
      })(),
      dropped.promise,
    ])
  } finally {
    // Listening, a stop lets the statement riding the session finish (createListener's session).
    o.signal.removeEventListener('abort', abandon)
  }
}

/**
 * The session's backend pid if it listens on CHANNEL; null if it answered that it does not.
 * Throws when the check fails or no answer comes in time: the session is in doubt, not pooled.
 * check-config asks the same question, so that it finds a transaction pooler as serve does.
 */
export async function listeningPid(client: pg.Client, timeoutMs: number): Promise<number | null> {
  const check = client
    .query<{ pid: number; ok: boolean }>(
      'select pg_backend_pid() as pid, exists (select 1 from pg_listening_channels() c where c = $1) as ok',
      [CHANNEL],
    )
    .then((r) => (r.rows[0]?.ok === true ? r.rows[0].pid : null))
  const timeout = new Promise<never>((_, reject) => {
    const t = setTimeout(
      () => reject(new Error(`the LISTEN check had no answer within ${timeoutMs} ms`)),
      timeoutMs,
    )
    check.finally(() => clearTimeout(t)).catch(() => {})
  })
  return Promise.race([check, timeout])
}

// end() waits for the server; a half-open socket never answers, so destroy it outright.
export function destroyClient(client: pg.Client) {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream
  stream?.destroy()
  client.end().catch(() => {})
}
