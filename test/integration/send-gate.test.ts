import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { createTestDb, type TestDb } from '../support/db.ts'

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t.drop()
})
beforeEach(async () => {
  await t.pool.query('truncate mailer.send_slots, mailer.mailbox_pacing')
})

const gate = (holder: string, o: { max?: number; rate?: number; ttl?: number } = {}) =>
  createPgSendGate({
    db: t.db,
    clock: systemClock,
    log: silentLogger,
    holder,
    maxConcurrency: o.max ?? 2,
    ratePerMinute: o.rate ?? 0,
    slotTtlMs: o.ttl ?? 30_000,
    maxWaitMs: 20,
  })

describe('the Postgres send gate', () => {
  test('concurrency across two workers never exceeds the limit, and every send gets its turn', async () => {
    const workers = [gate('a', { max: 3 }), gate('b', { max: 3 })]
    const signal = new AbortController().signal
    // The limit is reachable across workers, and a fourth request waits while it is reached.
    const held = await Promise.all(
      [0, 1, 0].map((w) => workers[w]!.acquire('box@example.com', signal)),
    )
    expect(held.every((p) => p !== null)).toBe(true)
    const fourth = new AbortController()
    const waiting = workers[1]!.acquire('box@example.com', fourth.signal)
    setTimeout(() => fourth.abort(), 150)
    expect(await waiting).toBeNull()
    for (const p of held) await p!.release()
    // Many at once: never more than the limit in flight, and every one gets its permit.
    let inFlight = 0
    let peak = 0
    let served = 0
    await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const permit = await workers[i % 2]!.acquire('box@example.com', signal)
        expect(permit).not.toBeNull()
        inFlight += 1
        served += 1
        peak = Math.max(peak, inFlight)
        await Bun.sleep(5) // a send's duration, not a wait for an effect
        inFlight -= 1
        await permit!.release()
      }),
    )
    // How many overlap depends on timing (a loaded machine serves them more one by one).
    expect(peak).toBeLessThanOrEqual(3)
    expect(served).toBe(24)
  })

  test('a dead holder’s slot is freed when it expires', async () => {
    const dead = gate('dead', { max: 1, ttl: 300 })
    const signal = new AbortController().signal
    expect(await dead.acquire('m@example.com', signal)).not.toBeNull() // never released
    const live = gate('live', { max: 1 })
    const t0 = performance.now()
    const permit = await live.acquire('m@example.com', signal)
    expect(permit).not.toBeNull()
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250)
  })

  test('pacing spaces sends from one mailbox across workers; other mailboxes are not held up', async () => {
    // 600/min = one send per 100 ms per mailbox.
    const a = gate('a', { max: 10, rate: 600 })
    const b = gate('b', { max: 10, rate: 600 })
    const signal = new AbortController().signal
    const starts: number[] = []
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const p = await (i % 2 ? a : b).acquire('Shared@Example.com', signal)
        starts.push(performance.now())
        await p!.release()
      }),
    )
    starts.sort((x, y) => x - y)
    // Six sends paced 100 ms apart in database time span at least 500 ms; allow for client jitter.
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThan(350)
    const rows = await t.pool.query('select mailbox from mailer.mailbox_pacing')
    expect(rows.rows).toEqual([{ mailbox: 'shared@example.com' }])
    const t0 = performance.now()
    await (await a.acquire('other@example.com', signal))!.release()
    expect(performance.now() - t0).toBeLessThan(100)
  })

  test('a throttle pauses the mailbox for every worker; an aborted wait returns null', async () => {
    const a = gate('a', { rate: 6000 })
    const b = gate('b', { rate: 6000 })
    await a.pause('busy@example.com', 60_000)
    const ac = new AbortController()
    const waiting = b.acquire('busy@example.com', ac.signal)
    setTimeout(() => ac.abort(), 100)
    expect(await waiting).toBeNull()
    const row = await t.pool.query(
      `select extract(epoch from next_at - now()) as s from mailer.mailbox_pacing`,
    )
    expect(Number(row.rows[0].s)).toBeGreaterThan(50)
  })
})
