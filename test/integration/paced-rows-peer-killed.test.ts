// A refused worker's pacing turns when the only working worker is killed (no clean stop, its entry left): given up as its entry's two leases pass, not at the refused worker's next block.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { pendingLastErrors } from '../../src/outbox/pending-last-errors.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
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

/** The working machine's LEASE_SECONDS (the least the configuration takes): live two of them past its last beat. */
const PEER_LEASE_SECONDS = 5

/** The working machine's registry entry beats (its reclaim's upsert, as far as liveness goes). */
const peerBeats = () =>
  t.pool.query(
    `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
     values ('working:2:abcdef', 'working', 2, 'test', '', $1)
     on conflict (id) do update set last_heartbeat_at = now()`,
    [PEER_LEASE_SECONDS],
  )

/** Its last beat a lease or more ago: a live worker's next one, idle, is due. */
const peerBeatLate = async () =>
  (
    await t.pool.query<{ late: boolean }>(
      `select last_heartbeat_at <= now() - make_interval(secs => lease_seconds) as late
         from mailer.workers where id = 'working:2:abcdef'`,
    )
  ).rows[0]?.late === true

test('the only working worker killed (its entry left, no beat since): the refused worker gives up the pacing turns once that entry’s two leases have passed, within its block, while a peer that still beats keeps them', async () => {
  // The refused worker's asks, counted, the turns read as each is answered. The working machine
  // beats once more, late (a lease past its last beat), as the first ask that finds it so begins:
  // alive then, a beat late within two leases; killed after it, no beat since.
  let asks = 0
  let lateBeatAsk: number | undefined
  const turnsAnswered: number[] = []
  const db = throughQueries(t, async (run, text) => {
    if (text.includes(GIVE_UP_ASK) && lateBeatAsk === undefined && (await peerBeatLate())) {
      lateBeatAsk = asks
      await peerBeats()
    }
    const answer = await run()
    if (text.includes(GIVE_UP_ASK)) {
      asks++
      turnsAnswered.push(await reservedTurns())
    }
    return answer
  })
  // One a minute, 10 rows held an hour ahead; its entry notes a refusal, as `serve` wires it.
  const r = await startPaced(t, { deps: { db }, notesRefusal: true })
  try {
    // One sent while its token serves, the other nine back to turns a minute apart.
    await rowsPaced(t, r)
    // Another machine whose credential works: its live entry notes no refusal.
    await peerBeats()

    // The cached token's use ends and Entra refuses the secret: a new row's claim meets it. The
    // refusal's block stands until the test's clock moves (its cooldown, a minute): no block's ask
    // comes after this one.
    r.clock.advance(2 * 3600_000)
    r.fake.setFaults({ token: Array.from({ length: 100 }, () => EXPIRED) })
    await enqueue(t)
    r.engine.drainer.wake()
    await pollUntil(async () =>
      asks > 0 && (await count(`last_error_code = 'AADSTS7000222'`)) === 1 ? true : undefined,
    )
    // The working machine sends the nine at their turns: they keep them.
    expect(await pendingRows()).toEqual([
      { code: 'AADSTS7000222', words: true, due: false, n: 1 },
      { code: 'mailbox_paced', words: false, due: false, n: 9 },
    ])

    // Its beats stop. Given up within a bound (read as they stand should it not come): two of its
    // leases past its last beat, and room for the ask.
    await pollUntil(
      async () => ((await reservedTurns()) === 0 ? true : undefined),
      4 * PEER_LEASE_SECONDS * 1000 + 10_000,
    ).catch(() => undefined)
    expect({ rows: await pendingRows(), turns: await reservedTurns() }).toEqual({
      rows: [
        { code: 'AADSTS7000222', words: true, due: false, n: 1 },
        { code: 'AADSTS7000222', words: true, due: true, n: 9 },
      ],
      turns: 0,
    })
    // The ask its late beat preceded (the block's own, asked again as its entry's two leases
    // passed) kept the turns: a live peer's beat, late within two leases, keeps them
    // (paced-rows-blocked.ts); the ask two leases past that beat gave them up (above).
    expect(lateBeatAsk).toBeGreaterThan(0)
    expect(turnsAnswered[lateBeatAsk ?? 0]).toBe(1)
    // What status reads: none held back by pacing, every pending row waiting on the refusal.
    expect((await liveStats(t.db, null)).heldBackPending).toBe(0)
    expect(await pendingLastErrors(t.db, { limit: 5, scanLimit: 1000 })).toEqual({
      total: 10,
      byCode: [{ code: 'AADSTS7000222', rows: 10 }],
      complete: true,
    })
    // Still within the block: nothing else asked Entra or sent.
    expect(r.transport.blockedForMs()).toBeGreaterThan(0)
    expect(r.fake.accepted).toHaveLength(1)
  } finally {
    await r.stop()
  }
})
