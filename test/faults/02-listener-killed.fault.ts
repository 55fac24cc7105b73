// Scenario 2: the LISTEN backend is terminated; rows inserted right after are delivered in seconds, no backstop poll.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import {
  allSent,
  cleanupAll,
  enqueue,
  FAST,
  report,
  seconds,
  sharedDatabase,
  spawnMailer,
  startGraph,
  within,
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { sendCounts } from './send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

const ROUNDS = 3

test('a terminated LISTEN session is replaced and new rows are delivered within seconds', async () => {
  const db = await sharedDatabase('listener_killed')
  const graph = await startGraph()
  // The backstop poll (POLL_INTERVAL_SECONDS=3600) and the listener check (600 s) cannot help here:
  // the loss wakes the worker, which polls every second only until a new session listens.
  const mailer = await spawnMailer('listener-killed', {
    DATABASE_URL: db.url,
    ...graph.env,
    ...FAST,
  })
  await mailer.waitReady()
  const listenerPid = async () =>
    (
      await db.q<{ pid: number }>(
        `select pid from pg_stat_activity
          where application_name = 'outbox-mailer:listener' and datname = current_database()`,
      )
    ).map((r) => r.pid)
  // The LISTEN session the scenario means: one that listens, its setup (the LISTEN, its check, the
  // probe) over. The one session named the listener while the worker says so: its probe's second
  // session names itself apart, and a kill inside the setup is listener-lost-in-setup.test.ts's.
  const listeningPid = async () => {
    const pids = await listenerPid()
    const listening = (await mailer.readyz().catch(() => null))?.body?.databases.every(
      (d) => d.listener === 'listening',
    )
    // Read again: the session seen before the worker's word is the one that listens.
    const again = await listenerPid()
    return listening && pids.length === 1 && again.join() === pids.join() ? pids : undefined
  }

  const all: string[] = []
  let worstMs = 0
  for (let round = 1; round <= ROUNDS; round++) {
    const [pid] = await within('one LISTEN session, listening', 10_000, listeningPid)
    const [killed] = await db.q<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid])
    expect(killed!.ok).toBe(true)
    const t0 = performance.now()
    const ids = await enqueue(db, 20, { tag: `round ${round}` })
    all.push(...ids)
    await allSent(db, ids, 5_000, [mailer])
    worstMs = Math.max(worstMs, performance.now() - t0)
    const [next] = await within('a new listener session', 5_000, async () => {
      const pids = await listenerPid()
      return pids.length === 1 && pids[0] !== pid ? pids : undefined
    })
    expect(next).not.toBe(pid)
  }
  await mailer.waitReady(5_000)
  const sends = await sendCounts(db, graph, all)
  report('2 listener killed', {
    rounds: ROUNDS,
    sent: all.length,
    duplicates: sends.duplicates,
    ambiguousResends: sends.ambiguousResends,
    recoverWorst: seconds(worstMs),
  })
  expect(graph.missing(all)).toEqual([])
  expect(sends.doubleSends).toEqual([])
  // "Within a couple of seconds": the listener's first reconnect waits at most 500 ms.
  expect(worstMs).toBeLessThan(3_000)
  mailer.proc.kill('SIGTERM')
  expect(await mailer.exited).toBe(0)
}, 60_000)
