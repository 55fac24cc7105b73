// The listener's own turns on a shared LISTEN session (its prime, its check) hold the session until their statement answers; statements waiting for them take the pool.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import type { SharedSession } from '../../src/db/shared-session.ts'
import { silentLogger } from '../../src/log.ts'
import type { Listener } from '../../src/outbox/listener.ts'
import {
  type AnswerHoldingProxy,
  startAnswerHoldingProxy,
} from '../support/answer-holding-proxy.ts'
import { useTestDb } from '../support/db.ts'
import { type EventLog, pollUntil } from '../support/events.ts'
import { loneListener } from '../support/lone-listener.ts'
import { takeQueryOverlaps } from '../support/query-overlap-guard.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let proxy: AnswerHoldingProxy | null = null
let h: DbHandle | null = null
let listener: Listener | null = null
afterEach(async () => {
  proxy?.release()
  await listener?.stop()
  await h?.close()
  proxy?.close()
  proxy = listener = h = null
})

// The listener's bound on its own statements (the prime's turn, a check).
const CHECK_TIMEOUT_MS = 300
// Well past the bound: a statement that has not answered by then waits for the held answer.
const ANSWER_BOUND_MS = 10_000

// The LISTEN checks handed to each of the listener's sessions in turn (the one at connect included),
// and whether that session had been dropped by then.
let checks: { session: number; dropped: boolean }[] = []
function countingChecks(shared: SharedSession): SharedSession {
  let sessions = 0
  return {
    ...shared,
    newClient(applicationName) {
      const client = shared.newClient(applicationName)
      const session = sessions++
      const query = client.query.bind(client) as (...args: unknown[]) => unknown
      client.query = ((...args: unknown[]) => {
        if (String(args[0]).includes('pg_listening_channels')) {
          const dropped = (client as unknown as { _ending: boolean })._ending
          checks.push({ session, dropped })
        }
        return query(...args)
      }) as typeof client.query
      return client
    },
  }
}

/** A listener sharing its session with the route, every byte through `proxy`, started and listening. */
async function listening(
  p: AnswerHoldingProxy,
  checkIntervalMs: number,
): Promise<{ handle: DbHandle; l: Listener; events: EventLog }> {
  const handle = openDb({ name: 'test', url: p.url, log: silentLogger, shareListenSession: true })
  checks = []
  const {
    listener: l,
    events,
    listening,
  } = loneListener(p.url, {
    checkIntervalMs,
    checkTimeoutMs: CHECK_TIMEOUT_MS,
    shared: countingChecks(handle.listenSession!),
  })
  h = handle
  listener = l
  await listening()
  return { handle, l, events }
}

const pidOf = async (q: Promise<{ rows: { pid: number }[] }>) => (await q).rows[0]!.pid
const withinBound = <T>(q: Promise<T>) =>
  Promise.race([q, Bun.sleep(ANSWER_BOUND_MS).then(() => 'no answer while the prime was held')])

test("a prime that outlasts its bound keeps the session until it ends: statements that waited for it, and those after, take the pool meanwhile; its lock_timeout's reset comes before anyone's statement", async () => {
  proxy = await startAnswerHoldingProxy(t.url)
  // The prime's claim runs; its answer is held, so the prime runs on past the listener's bound.
  proxy.holdAnswerOnceAt('outbox_claim_notified')
  const { handle, l } = await listening(proxy, 600_000)
  const sessionPid = l.backendPid()!
  await pollUntil(async () => (proxy!.holding() ? true : undefined))
  // The prime's turn is the client's, from its claim's sending to its answer: whether the server
  // has run the claim yet does not matter here (nothing of its effect is read).
  // Comes during the prime's turn, so waits for it; past the bound it takes the pool.
  const waited = withinBound(pidOf(handle.statements.query('select pg_backend_pid() as pid')))
  expect(await waited).toEqual(expect.any(Number))
  expect(await waited).not.toBe(sessionPid)
  expect(proxy.holding()).toBe(true)
  expect(handle.statements.next()).toBe('pool')
  const after = withinBound(pidOf(handle.statements.query('select pg_backend_pid() as pid')))
  expect(await after).toEqual(expect.any(Number))
  expect(await after).not.toBe(sessionPid)
  // The prime ends (its claim answered, lock_timeout reset): the session is the route's again,
  // and the first statement on it meets the session's own lock_timeout, not the prime's.
  proxy.release()
  const onSession = await pollUntil(async () => {
    if (handle.statements.next() !== 'session') return undefined
    const r = await handle.statements.query<{ pid: number; lock_timeout: string }>(
      "select pg_backend_pid() as pid, current_setting('lock_timeout') as lock_timeout",
    )
    return r.rows[0]!.pid === sessionPid ? r.rows[0]! : undefined
  })
  const pooled = await handle.pool.query<{ lock_timeout: string }>(
    "select current_setting('lock_timeout') as lock_timeout",
  )
  expect(onSession.lock_timeout).toBe(pooled.rows[0]!.lock_timeout)
})

test("a check that falls due while the prime's statement has no answer is not sent on that session: past the check's bound the listener drops the session, and listens on a new one", async () => {
  proxy = await startAnswerHoldingProxy(t.url)
  proxy.holdAnswerOnceAt('outbox_claim_notified')
  const { handle, l, events } = await listening(proxy, 100)
  const silent = l.backendPid()!
  await events.waitFor((e) => e.type === 'listener' && e.state === 'reconnecting')
  await events.waitFor((e) => e.type === 'listener' && e.state === 'listening')
  expect(l.backendPid()).not.toBe(silent)
  // Every turn asked for on the dropped session (a check that gave up waiting) has had its go.
  await handle.listenSession!.inTurn(async () => {})
  // Each session was checked once, as it connected: the silent one not again, held or dropped.
  expect(checks.filter((c) => c.session === 0)).toEqual([{ session: 0, dropped: false }])
  expect(takeQueryOverlaps()).toEqual([])
})
