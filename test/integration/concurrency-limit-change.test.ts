// GRAPH_MAX_CONCURRENCY changed across a restart: a dead worker's slots under the old limit, the new limit held.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import type { SendPermit } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const gate = (holder: string, max: number, clock: Clock = systemClock) =>
  createPgSendGate({
    db: t.db,
    clock,
    log: silentLogger,
    holder,
    maxConcurrency: max,
    ratePerMinute: 0,
    slotTtlMs: 30_000,
    maxWaitMs: 20,
  })

/** What a worker that died holding slots 1..n leaves behind: rows nobody renews or frees. */
async function deadHolding(n: number, expiresIn: string) {
  await t.pool.query(
    `insert into mailer.send_slots
     select s, 'dead', gen_random_uuid(), now() + $2::interval from generate_series(1, $1::int) s`,
    [n, expiresIn],
  )
}

/** The slots live in the database, by holder. */
async function liveSlots() {
  const r = await t.pool.query<{ holder: string; slot: number }>(
    `select holder, slot from mailer.send_slots where expires_at > now() order by slot`,
  )
  return r.rows
}

/** A clock whose first sleep (no slot free: the gate waits) aborts `ask`. */
function abortingAtFirstWait(ask: AbortController): Clock {
  return {
    now: systemClock.now,
    sleep: (ms, signal) => {
      ask.abort()
      return systemClock.sleep(ms, signal)
    },
  }
}

const permit = (p: unknown) => p as SendPermit

describe('GRAPH_MAX_CONCURRENCY changed across a restart', () => {
  test('lowered: a dead worker’s slots above the new limit never count; at most the new limit is in flight', async () => {
    // Died at 4 with every slot in use; its slots expire in a moment.
    await deadHolding(4, '300 ms')
    const ask = new AbortController()
    const g = gate('new', 2)
    const signal = AbortSignal.timeout(10_000)
    // Slots 1 and 2 free once their expiry passes (slots 3 and 4 are never the new worker's).
    const held = [
      await g.acquire('m@example.com', signal),
      await g.acquire('m@example.com', signal),
    ]
    expect(held.every((p) => p !== null && 'release' in p)).toBe(true)
    expect((await liveSlots()).filter((s) => s.holder === 'new').map((s) => s.slot)).toEqual([1, 2])
    // A third send waits, whatever slots above 2 stand free.
    await t.pool.query(`update mailer.send_slots set expires_at = '-infinity' where slot > 2`)
    const third = gate('new', 2, abortingAtFirstWait(ask))
    expect(await third.acquire('m@example.com', ask.signal)).toBeNull()
    for (const p of held) await permit(p).release()
    await g.close?.()
    await third.close?.()
  })

  test('raised: the slots above the old limit are taken at once; a dead worker’s stay its until they expire', async () => {
    // Died at 2 with both slots in use, expiring long after this test.
    await deadHolding(2, '10 minutes')
    const g = gate('new', 4)
    const signal = AbortSignal.timeout(10_000)
    // Slots 3 and 4 did not exist: the new worker creates and takes them.
    const held = [
      await g.acquire('m@example.com', signal),
      await g.acquire('m@example.com', signal),
    ]
    expect(held.every((p) => p !== null && 'release' in p)).toBe(true)
    expect(await liveSlots()).toEqual([
      { holder: 'dead', slot: 1 },
      { holder: 'dead', slot: 2 },
      { holder: 'new', slot: 3 },
      { holder: 'new', slot: 4 },
    ])
    // A fifth send in flight would exceed 4: it waits.
    const ask = new AbortController()
    const more = gate('new', 4, abortingAtFirstWait(ask))
    expect(await more.acquire('m@example.com', ask.signal)).toBeNull()
    for (const p of held) await permit(p).release()
    await g.close?.()
    await more.close?.()
  })
})
