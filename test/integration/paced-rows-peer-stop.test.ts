// A refused worker's pacing turns when the only working worker stops cleanly: given up at once, their rows due and named by the refusal, not a block (a minute) later.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { deregisterWorker } from '../../src/outbox/deregister-worker.ts'
import { pendingLastErrors } from '../../src/outbox/pending-last-errors.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import { WORKER_STOPPED } from '../../src/outbox/worker-stopped-notice.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  EXPIRED,
  GIVE_UP_ASK,
  pacedReads,
  rowsPaced,
  startPaced,
} from '../support/paced-refusal.ts'
import { throughQueries } from '../support/through-queries.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { count, reservedTurns, pendingRows: readPending } = pacedReads(t)
const pendingRows = () => readPending({ words: true })
// Engines a test left running (one that timed out) stopped before the next test and the database's drop.
const ended = endedAfterEach()

test('the only working worker’s clean stop has the refused worker give up the pacing turns at once: their rows due and named by the refusal, as status then reads them, not at its next block a minute later', async () => {
  // The refused worker's asks answered, counted: the test waits for its decision, not for a bound.
  let asks = 0
  const db = throughQueries(t, async (run, text) => {
    const answer = await run()
    if (text.includes(GIVE_UP_ASK)) asks++
    return answer
  })
  // One a minute, 10 rows held an hour ahead; its entry notes a refusal, as `serve` wires it.
  const r = await startPaced(t, { deps: { db }, notesRefusal: true })
  // Another machine whose credential works: it hears no notification and its backstop poll is 10
  // minutes away (a poller's is 1 s), so past its start's claim it claims none of the rows here;
  // its live registry entry notes no refusal.
  let workingClaims = 0
  const working = createTestEngine(t, {
    workerId: 'working:2:abcdef',
    config: { listenMode: 'poll' },
    deps: {
      pollIntervalMs: () => 600_000,
      claim: async (claimDb, p) => {
        const claimed = await claimBatch(claimDb, p)
        workingClaims++
        return claimed
      },
    },
  })
  ended.engines.push(working)
  try {
    // One sent while its token serves, the other nine back to turns a minute apart.
    await rowsPaced(t, r)
    // Registered, its start's claim (of no row: none due) made.
    await working.start()
    await pollUntil(async () =>
      workingClaims > 0 &&
      (await t.pool.query(`select 1 from mailer.workers where id = 'working:2:abcdef'`))
        .rowCount === 1
        ? true
        : undefined,
    )

    // The cached token's use ends and Entra refuses the secret: a new row's claim meets it. The
    // refusal's block stands until the test's clock moves (its cooldown, a minute).
    r.clock.advance(2 * 3600_000)
    r.fake.setFaults({ token: Array.from({ length: 100 }, () => EXPIRED) })
    await enqueue(t)
    r.engine.drainer.wake()
    await pollUntil(async () =>
      asks > 0 &&
      (await count(`last_error_code = 'AADSTS7000222'`)) === 1 &&
      (await liveStats(t.db, null)).credentialRefused?.workers === 1
        ? true
        : undefined,
    )
    // The working machine sends the nine at their turns: they keep them.
    expect(await pendingRows()).toEqual([
      { code: 'AADSTS7000222', words: true, due: false, n: 1 },
      { code: 'mailbox_paced', words: false, due: false, n: 9 },
    ])
    expect(r.transport.blockedForMs()).toBeGreaterThan(0)

    // The working machine stops cleanly: its entry leaves the registry, and no live worker can
    // send. Given up within a bound (read as they stand should it not come).
    await working.stop()
    await pollUntil(async () => ((await reservedTurns()) === 0 ? true : undefined), 10_000).catch(
      () => undefined,
    )
    expect({ rows: await pendingRows(), turns: await reservedTurns() }).toEqual({
      rows: [
        { code: 'AADSTS7000222', words: true, due: false, n: 1 },
        { code: 'AADSTS7000222', words: true, due: true, n: 9 },
      ],
      turns: 0,
    })
    // What status reads: none held back by pacing, every pending row waiting on the refusal.
    expect((await liveStats(t.db, null)).heldBackPending).toBe(0)
    expect(await pendingLastErrors(t.db, { limit: 5, scanLimit: 1000 })).toEqual({
      total: 10,
      byCode: [{ code: 'AADSTS7000222', rows: 10 }],
      complete: true,
    })
    // Still within the block: nothing else asked again.
    expect(r.transport.blockedForMs()).toBeGreaterThan(0)
    expect(r.fake.accepted).toHaveLength(1)
  } finally {
    await r.stop()
  }
})

test('a clean stop notifies the workers only when its entry could send and another live entry notes a refusal: a stop with none refused, or of a refused worker, wakes nobody', async () => {
  const entry = (id: string, refused: boolean, beatSecondsAgo = 0) =>
    t.pool.query(
      `insert into mailer.workers (id, host, pid, version, lease_seconds, last_heartbeat_at,
                                   credential_refused_code, credential_refused_since)
       values ($1, 'h', 2, 'v', 60, now() - make_interval(secs => $2),
               case when $3 then 'AADSTS7000222' end, case when $3 then now() end)`,
      [id, beatSecondsAgo, refused],
    )
  const listener = await t.pool.connect()
  const heard: string[] = []
  listener.on('notification', (n) => heard.push(n.payload ?? ''))
  let marks = 0
  // Every notification committed before the mark is heard before it: what the stop sent, if any.
  const heardBy = async () => {
    const mark = `test-mark ${++marks}`
    await t.pool.query(`select pg_notify('mailer_outbox', $1)`, [mark])
    await pollUntil(async () => (heard.includes(mark) ? true : undefined), 5_000)
    return heard.splice(0).filter((p) => p !== mark)
  }
  try {
    await listener.query('listen mailer_outbox')
    // None refused: the stop of a working worker wakes nobody.
    await entry('a:1:abcdef', false)
    await entry('b:1:abcdef', false)
    await deregisterWorker(t.db, 'a:1:abcdef')
    expect(await heardBy()).toEqual([])
    // Another refused, but the stopping one refused too (no token serving): nobody.
    await entry('r:1:abcdef', true)
    await entry('c:1:abcdef', true)
    await deregisterWorker(t.db, 'c:1:abcdef')
    expect(await heardBy()).toEqual([])
    // A refused entry past two leases (its worker killed) is nobody's to wake.
    await t.pool.query(`delete from mailer.workers where id = 'r:1:abcdef'`)
    await entry('r:1:abcdef', true, 121)
    await deregisterWorker(t.db, 'b:1:abcdef')
    expect(await heardBy()).toEqual([])
    // The working worker stops while a refused one is live: told, once, as the stop commits.
    await entry('b:1:abcdef', false)
    await t.pool.query(
      `update mailer.workers set last_heartbeat_at = now() where id = 'r:1:abcdef'`,
    )
    await deregisterWorker(t.db, 'b:1:abcdef')
    expect(await heardBy()).toEqual([WORKER_STOPPED])
    expect((await t.pool.query('select id from mailer.workers')).rows).toEqual([
      { id: 'r:1:abcdef' },
    ])
  } finally {
    await listener.query('unlisten *')
    listener.release()
  }
})
