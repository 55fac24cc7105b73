// A LISTEN session held for long, or reconnected often: each interval's wait and check, and each session, leave nothing behind (memory).

import { heapStats } from 'bun:jsc'
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createListener } from '../../src/outbox/listener.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()

const INTERVAL_MS = 60_000
// The counts are sized to the leak each test looks for, one promise per interval or per session:
// the live promises measured across them grew by 1 (4,000 intervals, 200 sessions, 2 runs each),
// so a bound of a quarter of the count stays far above that, and far below the leak's count (a
// promise leaked per interval or per session, added to listener.ts, failed both tests at 400 and
// 40: Received 401 and 39). More intervals or sessions would prove nothing more, and each session
// is two Postgres backends started.
const TICKS = 1_000

/**
 * The system clock, except that the listener's wait between checks ends at once (on the next turn
 * of the event loop) and is counted: `reached(n)` resolves when the n-th has ended.
 */
function tickingClock() {
  let ticks = 0
  const waiters: { n: number; resolve: () => void }[] = []
  const clock: Clock = {
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve()
        if (ms === INTERVAL_MS) {
          setImmediate(() => {
            ticks++
            for (const w of waiters.filter((w) => w.n <= ticks)) w.resolve()
            resolve()
          })
          return
        }
        const timer = setTimeout(resolve, ms)
        signal?.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        })
      }),
  }
  const reached = (n: number) =>
    new Promise<void>((resolve) => {
      if (ticks >= n) resolve()
      else waiters.push({ n, resolve })
    })
  return { clock, reached }
}

/** Live promises after a full collection. */
function livePromises(): number {
  Bun.gc(true)
  return heapStats().objectTypeCounts.Promise ?? 0
}

// 1,100 checks, each a statement on the session (4,100 took 47 s on a loaded 2-core machine, seen in
// a run beside a CPU hog).
test('a listening session keeps no promise per check interval (a session held for weeks leaked one per interval)', async () => {
  const { clock, reached } = tickingClock()
  // An era that does not end while the session is held, as in a service that never fails over.
  const era = Promise.withResolvers<{ first: boolean }>()
  const listener = createListener({
    db: 'test',
    url: t.url,
    log: silentLogger,
    clock,
    wake: () => {},
    owedRowsHeld: () => {},
    workerStopped: () => {},
    checkIntervalMs: INTERVAL_MS,
    checkTimeoutMs: 5_000,
    mode: 'auto',
    connectionsRetired: () => era.promise,
  })
  try {
    listener.start()
    await reached(100)
    const before = livePromises()
    await reached(100 + TICKS)
    const after = livePromises()
    expect(listener.state()).toBe('listening')
    // One per interval would be TICKS more; what a check has in flight is a handful.
    expect(after - before).toBeLessThan(TICKS / 4)
  } finally {
    await listener.stop()
  }
}, 240_000)

const ROUNDS = 60
/** A session's reconnect takes well under a second, also loaded: its wait's bound. */
const LATCH_MS = 20_000

// Each round opens two sessions (the LISTEN session and its probe's): 210 rounds took 60 s on a
// loaded 2-core machine (seen: timed out at the file's 60 s), a few seconds on an idle one.
test('a listener reconnecting on a URL of its own keeps no promise per session (a flapping network leaked one per reconnect until a failover)', async () => {
  // The system clock, except that the reconnect backoff (under a second) ends at once.
  const clock: Clock = {
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve()
        if (ms < 1_000) return void setImmediate(resolve)
        const timer = setTimeout(resolve, ms)
        signal?.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        })
      }),
  }
  // Each session's listening bounded and named: a reconnect that never comes fails as that.
  const latches = boundedLatches(LATCH_MS)
  let sessions = 1
  let listening = latches.make('the first session listening')
  const listener = createListener({
    db: 'test',
    url: t.url,
    log: silentLogger,
    clock,
    wake: () => {},
    owedRowsHeld: () => {},
    workerStopped: () => {},
    onEvent: (e) => {
      if (e.type === 'listener' && e.state === 'listening') listening.resolve()
    },
    checkIntervalMs: INTERVAL_MS,
    checkTimeoutMs: 5_000,
    mode: 'auto',
    // The database's own eras, which do not end here: no write meets a read-only server.
    connectionsRetired: t.connectionsRetired,
  })
  // Ends the current session as a dropped connection would, and waits for the next one.
  const reconnect = async () => {
    const pid = listener.backendPid()
    listening = latches.make(`session ${++sessions} listening (the last one's backend ended)`)
    await t.pool.query('select pg_terminate_backend($1)', [pid])
    await listening.wait()
  }
  try {
    listener.start()
    await listening.wait()
    for (let i = 0; i < 10; i++) await reconnect()
    const before = livePromises()
    for (let i = 0; i < ROUNDS; i++) await reconnect()
    const after = livePromises()
    expect(listener.state()).toBe('listening')
    // One per session would be ROUNDS more; what a session has in flight is a handful.
    expect(after - before).toBeLessThan(ROUNDS / 4)
  } finally {
    await listener.stop()
  }
}, 240_000)
