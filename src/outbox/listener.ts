// Listener: a supervised LISTEN connection that wakes the drainer; on every (re)connect it LISTENs, then sweeps.
import { monotonicNow, waitAtMost } from '../clock.ts'
import { createFailureRun } from '../failure-run.ts'
import type { ListenerState } from './events.ts'
import { takeHolderLock } from './holder-lock.ts'
import { serverKeepaliveAsk } from './listen-keepalive.ts'
import { connectListening, destroyClient, newListenClient } from './listen-session.ts'
import type { ListenerDeps } from './listener-deps.ts'
import { watchListening } from './listening-watch.ts'
import { retakeHolderLock } from './lock-retake-wait.ts'
import { primeSharedSession } from './shared-session-prime.ts'

export interface Listener {
  start(): void
  stop(): Promise<void>
  state(): ListenerState
  /** Backend pid of the LISTEN session (tests terminate it), or null. */
  backendPid(): number | null
  /** Backend pid of the LISTEN session while it holds the worker's liveness lock (holder-lock.ts), or null. */
  holderLockPid(): number | null
  /** The note slot takes write while the LISTEN session holds the worker's liveness lock (holder-lock.ts), or null. */
  holderLockNote(): string | null
  /** While not listening: the last connect's error and the variable of its URL; null once listening. */
  connectFailure(): { err: unknown; urlVariable: string | null } | null
}

export function createListener(d: ListenerDeps): Listener {
  let state: ListenerState = d.mode === 'poll' ? 'polling' : 'stopped'
  let pid: number | null = null
  let lockNote: string | null = null
  let connectFailure: unknown = null
  let running: Promise<void> | null = null
  const stopping = new AbortController()
  const checkTimeoutMs = d.checkTimeoutMs ?? 5_000
  const maxBackoffMs = d.maxBackoffMs ?? 10_000
  const askServerKeepalive = serverKeepaliveAsk(d, checkTimeoutMs)
  // A database down for an hour: a few lines (its start, a new cause, every 5 minutes), not one
  // per reconnect (5-10 s apart); the reconnect's own line says how many failed.
  const connects = createFailureRun({
    log: d.log,
    clock: d.clock,
    msg: 'listener could not connect',
    fields: { db: d.db, ...(d.urlVariable && { variable: d.urlVariable }) },
  })

  const setState = (s: ListenerState) => {
    if (s === state) return
    state = s
    d.onEvent?.({ type: 'listener', db: d.db, state: s })
  }

  // The lock held: takes answered from now on note their own slots (holder-lock.ts).
  const held = (note: string) => {
    lockNote = note
  }

  async function session(): Promise<'lost' | 'pooled'> {
    // Taken before connecting: a session opened before a failover may reach the old primary, which
    // hears no NOTIFY of the application's any more, yet answers, so no check would replace it. A
    // shared session is the route's to drop at its next statement, letting one on it finish.
    // The session's end (lost, or its era retired), a failed check or a stop aborts `over`.
    const over = new AbortController()
    const retired = d.shared ? undefined : d.connectionsRetired?.(over.signal)
    const { client, lost } = newListenClient(d)
    try {
      pid = await connectListening(client, {
        url: d.url,
        clock: d.clock,
        checkTimeoutMs,
        signal: stopping.signal,
      })
      if (stopping.signal.aborted) return 'lost'
      if (pid === null) return 'pooled'
      // Before the lock: a vanished machine's session, and the lock with it, ends within about a
      // minute (server-keepalive.ts), not the system's 2 hours, so peers stop counting it live.
      await askServerKeepalive(client, stopping.signal)
      // A stop meanwhile: the session ends here, no lock taken nor listening told after it.
      if (stopping.signal.aborted) return 'lost'
      // Before the session is shared or listening is told: its statements are this one's alone.
      if (d.holder !== undefined)
        lockNote = await takeHolderLock(client, d.holder, {
          ...d,
          timeoutMs: checkTimeoutMs,
          held,
          stopping: stopping.signal,
        })
      // A stop meanwhile: likewise, the session (and a lock its take got) ends here, not listening.
      if (stopping.signal.aborted) return 'lost'
      setState('listening')
      let answeredAt = Number.NEGATIVE_INFINITY
      d.shared?.attach(client, () => {
        answeredAt = monotonicNow(d.clock)
      })
      const failed = connects.succeeded()
      connectFailure = null
      d.log.info('listening for outbox notifications', {
        db: d.db,
        ...(failed && { failedConnects: failed.failures, failingMs: failed.ms }),
      })
      if (d.shared) primeSharedSession(d.shared, client, d, checkTimeoutMs)
      d.wake('sweep')
      const holder = d.holder
      await watchListening({
        client,
        d,
        lost,
        retired,
        over,
        stopping: stopping.signal,
        checkTimeoutMs,
        answeredAt: () => answeredAt,
        lockHeld: () => lockNote !== null,
        retakeLock:
          holder === undefined
            ? null
            : async () => {
                lockNote = await retakeHolderLock(client, holder, d, checkTimeoutMs, held)
              },
      })
      return 'lost'
    } finally {
      over.abort()
      pid = null
      lockNote = null
      // A lost session fails the statement on it (its caller retries); a stop lets it finish.
      const detached = d.shared?.detach()
      if (detached && stopping.signal.aborted) {
        await waitAtMost(d.clock, detached, checkTimeoutMs).catch(() => {})
      }
      destroyClient(client)
    }
  }

  async function supervise() {
    let backoffMs = 500
    while (!stopping.signal.aborted) {
      setState(state === 'listening' ? 'reconnecting' : state === 'stopped' ? 'connecting' : state)
      let outcome: 'lost' | 'pooled' | 'error' = 'error'
      try {
        outcome = await session()
      } catch (err) {
        if (stopping.signal.aborted) break
        if (d.shared?.refusedAtStartup(err)) continue
        connects.failed(err)
        connectFailure = err
      }
      if (stopping.signal.aborted) break
      if (outcome === 'pooled') {
        d.log.warn(
          'LISTEN is not possible on this connection (a transaction pooler?); polling instead. Give this database a direct URL to listen on (LISTEN_DATABASE_URL, or its "listenUrl" in MAILER_DATABASES) to get instant pickup.',
          { db: d.db },
        )
        setState('polling')
        // The drainer armed its backstop poll (POLL_INTERVAL_SECONDS) while this connected: a wake
        // makes it look now and wait the polling interval from here on.
        d.wake('sweep')
        return
      }
      if (outcome === 'lost') backoffMs = 500
      // Away from now on: the drainer looks at once (a row whose notification the lost session
      // missed) and polls every second until a session listens (backstopPollMs), not after its
      // wait's POLL_INTERVAL_SECONDS (an hour at most). Once per absence: the polls cover the rest.
      if (state !== 'reconnecting') {
        setState('reconnecting')
        d.wake('lost')
      }
      // The drainer's backstop poll keeps sending while we are away; sweep again on reconnect.
      const jittered = backoffMs * (0.5 + Math.random() / 2)
      await d.clock.sleep(jittered, stopping.signal)
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs)
    }
  }

  return {
    start() {
      if (d.mode === 'poll') {
        d.log.info('LISTEN_MODE=poll: polling for outbox rows', { db: d.db })
        setState('polling')
        return
      }
      running ??= supervise().finally(() => {
        if (state !== 'polling') setState('stopped')
      })
    },
    async stop() {
      stopping.abort()
      await running
      setState('stopped')
    },
    state: () => state,
    backendPid: () => pid,
    holderLockPid: () => (lockNote !== null ? pid : null),
    holderLockNote: () => lockNote,
    connectFailure: () =>
      connectFailure === null ? null : { err: connectFailure, urlVariable: d.urlVariable ?? null },
  }
}
