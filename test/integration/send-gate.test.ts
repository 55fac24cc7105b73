// The Postgres send gate: per-mailbox concurrency and pacing across workers, pauses, slots reused and given back.
import { beforeEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock } from '../../src/clock.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import type { SendPermit } from '../../src/outbox/send-gate.ts'
import { ensureSlots, takeSlots } from '../../src/outbox/send-slots.ts'
import type { Sender } from '../../src/outbox/sender.ts'
import { createSlotFreer } from '../../src/outbox/slot-freer.ts'
import { createSlotKeeper } from '../../src/outbox/slot-keeper.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { type TestDb, useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { throughQueries } from '../support/through-queries.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
beforeEach(async () => {
  await t.pool.query('truncate mailer.send_slots, mailer.mailbox_pacing')
})

const pgGate = (
  holder: string,
  o: {
    max?: number
    rate?: number
    ttl?: number
    clock?: Clock
    maxWaitMs?: number
    db?: TestDb['db']
  } = {},
) =>
  createPgSendGate({
    db: o.db ?? t.db,
    clock: o.clock ?? systemClock,
    log: silentLogger,
    holder,
    maxConcurrency: o.max ?? 2,
    ratePerMinute: o.rate ?? 0,
    slotTtlMs: o.ttl ?? 30_000,
    maxWaitMs: o.maxWaitMs ?? 20,
  })

/**
 * The system clock, whose `waits` resolves at the first sleep: the gate found the mailbox paused,
 * or no slot free, and waits. A test aborts a wait then, not after a guessed 100 ms (which a
 * starved machine may spend before the gate has looked, or after a brief pause has run out).
 */
function waitingClock() {
  // Bounded and named, from the clock's making: the test's steps before are a 10 s acquire at most.
  const waited = boundedLatches(20_000).make('the gate’s first wait (a sleep)')
  const clock: Clock = {
    now: () => systemClock.now(),
    sleep: (ms, signal) => {
      waited.resolve()
      return systemClock.sleep(ms, signal)
    },
  }
  const waits = waited.wait().then(() => 'waited' as const)
  // Raced by the test; a test that failed before its race leaves the run-out to no one.
  waits.catch(() => undefined)
  return { clock, waits }
}

/**
 * The system's clocks read as standing still until `run()` (sleeps stay real): a slot taken under it
 * stays inside its reuse window (500 ms) however slowly a loaded machine gets to the give-back.
 */
function heldClock() {
  const at = { wall: Date.now(), monotonic: performance.now() }
  let held = true
  const clock: Clock = {
    now: () => (held ? at.wall : Date.now()),
    monotonic: () => (held ? at.monotonic : performance.now()),
    sleep: systemClock.sleep,
  }
  return {
    clock,
    run: () => {
      held = false
    },
  }
}

/** The system's clocks, the wall one stepped by `step.ms` (an NTP step, a VM resumed). */
function steppedClock(step: { ms: number }): Clock {
  return {
    now: () => Date.now() + step.ms,
    monotonic: () => performance.now(),
    sleep: systemClock.sleep,
  }
}

// A gate for tests that want a permit or null: a "mailbox paused" answer there fails the test.
const gate = (holder: string, o: Parameters<typeof pgGate>[1] = {}) => {
  const g = pgGate(holder, o)
  return {
    ...g,
    acquire: async (mailbox: string, signal: AbortSignal, readPause?: boolean) => {
      const p = await g.acquire(mailbox, signal, readPause)
      if (p && 'pausedForMs' in p) throw new Error(`mailbox paused for ${p.pausedForMs} ms`)
      return p
    },
  }
}

// takePacing's statement (src/outbox/mailbox-pacing.ts): the one that takes a mailbox's next send time.
const isTakePacing = (text: string) =>
  text.includes('taken as (') && text.includes('insert into mailer.mailbox_pacing')

// The slot row as the database has it: who holds it (token) and whether it is free.
const slotRow = async () =>
  (
    await t.pool.query<{ token: string; free: boolean }>(
      `select token::text, expires_at <= now() as free from mailer.send_slots where slot = 1`,
    )
  ).rows[0]!

/**
 * The TTL of a slot whose renewal a test waits for: renewed a third to half of it after its take,
 * it leaves a late renewal (a loaded machine) at least 1.5 s before the slot expires in the
 * database. At 1 s that was 0.5 s, and a renewal 700 ms late lost the slot to the rival.
 */
const RENEWED_TTL_MS = 3_000

/**
 * Slot 1, taken and in use: once the database's clock is past the expiry it was taken with (a
 * bounded wait; `meanwhile` runs first), another worker's take finds nothing, and the holder's
 * token stands.
 */
async function expectKeptPastItsFirstExpiry(meanwhile: () => void = () => {}) {
  const taken = await t.pool.query<{ token: string; expires_at: Date }>(
    'select token::text, expires_at from mailer.send_slots where slot = 1',
  )
  const { token, expires_at: firstExpiry } = taken.rows[0]!
  meanwhile()
  await pollUntil(async () => {
    const r = await t.pool.query('select now() > $1::timestamptz as past', [firstExpiry])
    return r.rows[0].past ? true : undefined
  })
  const rival = await takeSlots(t.db, { want: 1, max: 1, holder: 'b', ttlMs: 1_000 })
  expect(rival).toEqual([])
  expect((await slotRow()).token).toBe(token)
}

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
    // What a worker that took the slot and died leaves behind: a row nobody renews.
    await t.pool.query('truncate mailer.send_slots')
    // Read before the insert: its expiry is then at least 300 ms after t0, however late the
    // insert's answer reaches the test (read after it, a late answer shortened the span measured).
    const t0 = performance.now()
    await t.pool.query(
      `insert into mailer.send_slots values (1, 'dead', gen_random_uuid(), now() + interval '300 ms')`,
    )
    const signal = new AbortController().signal
    const live = gate('live', { max: 1 })
    const permit = await live.acquire('m@example.com', signal)
    expect(permit).not.toBeNull()
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250)
  })

  test('a slot stays held while its send runs past the TTL, and frees once given back', async () => {
    // One permit may cover a mailbox lookup (two requests), a 401 refresh-and-retry and the send:
    // longer than the TTL, which is one request's deadline and a margin.
    const a = gate('a', { max: 1, ttl: RENEWED_TTL_MS })
    const permit = await a.acquire('m@example.com', new AbortController().signal)
    await expectKeptPastItsFirstExpiry()
    await permit!.release()
    await pollUntil(async () => ((await slotRow()).free ? true : undefined), 5_000)
    await a.close?.()
  })

  test('pacing spaces sends from one mailbox across workers; other mailboxes are not held up', async () => {
    // 600/min = one send per 100 ms per mailbox.
    const a = gate('a', { max: 10, rate: 600 })
    const b = gate('b', { max: 10, rate: 600 })
    const signal = new AbortController().signal
    // Each worker has one send at a time waiting for the mailbox (a second one would go back to a
    // reserved turn: see below), three each.
    const asked = performance.now()
    const permitted: number[] = []
    await Promise.all(
      [a, b].map(async (g) => {
        for (let i = 0; i < 3; i++) {
          const p = await g.acquire('Shared@Example.com', signal)
          permitted.push(performance.now())
          await p!.release()
        }
      }),
    )
    // Six turns 100 ms apart in database time: the last permit comes at least 500 ms after the
    // first was asked for, however late the machine answers (a first permit received late, as
    // under load, would shorten a span measured from it).
    expect(Math.max(...permitted) - asked).toBeGreaterThanOrEqual(500)
    const rows = await t.pool.query('select mailbox from mailer.mailbox_pacing')
    expect(rows.rows).toEqual([{ mailbox: 'shared@example.com' }])
    // A second send of one worker while the first waits for the mailbox is answered at once, with
    // a turn reserved for it, later ones an interval apart.
    const first = pgGate('c', { rate: 600 }).acquire('shared@example.com', signal)
    // The waiting send's first ask for its turn is held back until both later sends are answered:
    // had its turn come in between (a slow answer to the first reservation, as under load), the
    // second would wait in its place, for a slot held until the end of this test.
    // Past the two acquires' 10 s bound, which ends a failing wait first.
    const answered = boundedLatches(20_000).make('both later sends answered')
    let holding = true
    const c = pgGate('d', {
      rate: 600,
      db: throughQueries(t, async (run, text) => {
        if (holding && isTakePacing(text)) {
          holding = false
          await answered.wait()
        }
        return run()
      }),
    })
    const waiting = c.acquire('shared@example.com', signal)
    // The bound only ends a failing wait early (a send that waits in place for a slot).
    const bound = AbortSignal.timeout(10_000)
    let turns: unknown[]
    try {
      turns = [
        await c.acquire('shared@example.com', bound),
        await c.acquire('shared@example.com', bound),
      ]
    } finally {
      answered.resolve()
    }
    for (const turn of turns)
      expect(turn).toEqual({ pausedForMs: expect.any(Number), reserved: true })
    // The turns come from the mailbox's reservation horizon, kept beside its pacing.
    const horizon = await t.pool.query(
      `select mailbox from mailer.mailbox_pacing where mailbox like 'queue %'`,
    )
    expect(horizon.rows).toEqual([{ mailbox: 'queue shared@example.com' }])
    for (const p of [await first, await waiting])
      await (p as { release(): Promise<void> }).release()
    // Another mailbox is not held up, even by one paused for a minute: its permit comes at once.
    // The bound only ends a failing wait early; it is no timing assertion.
    await a.pause('shared@example.com', 60_000)
    const other = await a.acquire('other@example.com', AbortSignal.timeout(10_000))
    expect(other).not.toBeNull()
    await other!.release()
  })

  test('a throttle pauses the mailbox for every worker; an aborted wait returns null', async () => {
    const a = gate('a', { rate: 6000 })
    const { clock, waits } = waitingClock()
    const b = pgGate('b', { rate: 6000, clock })
    await a.pause('busy@example.com', 60_000)
    // A long pause is answered at once, so the row can go back and make room for other mailboxes.
    const paused = await b.acquire('busy@example.com', AbortSignal.timeout(10_000))
    expect(paused).toEqual({ pausedForMs: expect.any(Number) })
    expect((paused as { pausedForMs: number }).pausedForMs).toBeGreaterThan(50_000)
    const row = await t.pool.query(
      `select extract(epoch from next_at - now()) as s from mailer.mailbox_pacing`,
    )
    expect(Number(row.rows[0].s)).toBeGreaterThan(50)
    // A brief one (up to 5 s) is waited out: the gate waits, and an abort ends the wait.
    await a.pause('brief@example.com', 4_000)
    const ac = new AbortController()
    const waiting = b.acquire('brief@example.com', ac.signal)
    expect(await Promise.race([waits, waiting])).toBe('waited')
    ac.abort()
    expect(await waiting).toBeNull()
  })

  test('a throttle pauses the mailbox for every worker also without pacing (MAILBOX_RATE_PER_MINUTE=0)', async () => {
    const a = gate('a', { rate: 0 })
    const { clock, waits } = waitingClock()
    const b = gate('b', { rate: 0, clock })
    // The pause is read by the last check before the send (see the engine tests below); a send
    // that found it there asks the gate again, which then reads and honours it.
    const unread = await b.acquire(' Busy@Example.com', AbortSignal.timeout(10_000))
    expect(unread?.checkPause).toBe('busy@example.com')
    await unread!.release()
    await a.pause('busy@example.com', 4_000)
    const ac = new AbortController()
    const waiting = b.acquire('Busy@Example.com', ac.signal, true)
    expect(await Promise.race([waits, waiting])).toBe('waited')
    ac.abort()
    expect(await waiting).toBeNull()
    await a.pause('busy@example.com', 60_000)
    const paused = await pgGate('c').acquire('busy@example.com', AbortSignal.timeout(10_000), true)
    expect(paused).toEqual({ pausedForMs: expect.any(Number) })
    // Another mailbox is not held up.
    const other = await b.acquire('other@example.com', AbortSignal.timeout(10_000), true)
    expect(other).not.toBeNull()
    await other!.release()
    // Once the pause is over, the mailbox sends again.
    await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
    const after = await b.acquire('busy@example.com', AbortSignal.timeout(10_000), true)
    expect(after).not.toBeNull()
    await after!.release()
    await b.close?.()
  })

  test('without pacing, a brief pause another worker set is waited out before the next send', async () => {
    // At each send: was the mailbox's pause over, in database time?
    const pauseOver: boolean[] = []
    const fake = createFakeSender()
    const sender: Sender = {
      name: 'checking',
      send: async (mail, signal) => {
        const r = await t.pool.query(
          `select coalesce(bool_and(next_at <= now()), true) as over from mailer.mailbox_pacing`,
        )
        pauseOver.push(r.rows[0].over)
        return fake.send(mail, signal)
      },
    }
    const engine = createTestEngine(t, { deps: { sender, gate: pgGate('w', { max: 2 }) } })
    try {
      await engine.start()
      const first = await enqueue(t)
      await engine.events.waitFor(settledFor(first, 'sent'), 10_000)
      // Another worker's send was throttled for a second and a half.
      await gate('x').pause('sender@example.com', 1_500)
      const id = await enqueue(t)
      await engine.events.waitFor(settledFor(id, 'sent'), 10_000)
      // Sent once the pause was over, counted once, never given back.
      expect(pauseOver).toEqual([true, true])
      const row = await t.pool.query('select attempts from mailer.email_outbox where id = $1', [id])
      expect(row.rows[0]).toEqual({ attempts: 1 })
    } finally {
      await engine.stop()
    }
  })

  test('a worker passes a slot from send to send without a statement, and frees it once no send wants it', async () => {
    // Reuse is bounded in time (the next test): held still, the clock leaves only the handover to test.
    const held = heldClock()
    const a = gate('a', { max: 1, clock: held.clock })
    const signal = new AbortController().signal
    const first = await a.acquire('m@example.com', signal)
    const taken = await slotRow()
    expect(taken.free).toBe(false)
    await first!.release()
    // The next send reuses the slot: a take would have written a new token.
    const second = await a.acquire('m@example.com', signal)
    expect(await slotRow()).toEqual(taken)
    // Held, so another worker waits ...
    const { clock, waits } = waitingClock()
    const b = gate('b', { max: 1, clock })
    const giveUp = new AbortController()
    const waiting = b.acquire('m@example.com', giveUp.signal)
    expect(await Promise.race([waits, waiting])).toBe('waited')
    giveUp.abort()
    expect(await waiting).toBeNull()
    // ... until no send of this worker wants it: then it is freed for everyone.
    held.run()
    await second!.release()
    await pollUntil(async () => ((await slotRow()).free ? true : undefined), 5_000)
    const theirs = await b.acquire('m@example.com', signal)
    expect(theirs).not.toBeNull()
    expect((await slotRow()).token).not.toBe(taken.token)
    await theirs!.release()
    await b.close?.()
    expect((await slotRow()).free).toBe(true)
  })

  test('a send waiting for a slot gets the one its own worker gives back, with no poll', async () => {
    // A waiter served by its own poll (20 ms, doubling up to 2 s) would write a new token. Held
    // still, the clock keeps the slot inside its reuse window until it is given back.
    const a = gate('a', { max: 1, maxWaitMs: 2_000, clock: heldClock().clock })
    const signal = new AbortController().signal
    const first = await a.acquire('m@example.com', signal)
    const taken = await slotRow()
    let served = false
    const next = a.acquire('m@example.com', signal).then((p) => {
      served = true
      return p
    })
    // The waiter has polled once and found the slot busy: it now waits for a handover.
    await pollUntil(async () => ((await slotRow()).free === false ? true : undefined))
    expect(served).toBe(false)
    await first!.release()
    const permit = await next
    // Handed over: the same token. A take (the waiter's own poll) would have written a new one.
    expect(await slotRow()).toEqual(taken)
    await permit!.release()
    await a.close?.()
  })

  test('past its reuse window a slot goes back to the database, whatever this worker wants', async () => {
    let now = 1_000_000
    const clock: Clock = { now: () => now, sleep: systemClock.sleep }
    const a = gate('a', { max: 1, clock })
    const signal = new AbortController().signal
    const first = await a.acquire('m@example.com', signal)
    const taken = await slotRow()
    await first!.release()
    // Reuse is bounded (500 ms by default), so a send always starts well inside the slot's TTL.
    now += 500
    const second = await a.acquire('m@example.com', signal)
    expect(second).not.toBeNull()
    const retaken = await slotRow()
    expect(retaken.free).toBe(false)
    expect(retaken.token).not.toBe(taken.token)
    await second!.release()
    await a.close?.()
    expect((await slotRow()).free).toBe(true)
  })

  test('the engine gives a permit back when the provider request ends, before recording its outcome', async () => {
    // What the engine had reported when the permit came back.
    let seenAtRelease: string[] | null = null
    const engine = createTestEngine(t, {
      deps: {
        gate: {
          open: false,
          acquire: async () => ({
            release: async () => {
              seenAtRelease = engine.events.events.map((e) => e.type)
            },
          }),
          pause: async () => {},
        },
      },
    })
    try {
      await engine.start()
      const id = await enqueue(t)
      await engine.events.waitFor(settledFor(id, 'sent'), 5_000)
      expect(seenAtRelease).not.toBeNull()
      expect(seenAtRelease!).toContain('claimed')
      expect(seenAtRelease!).not.toContain('settled')
    } finally {
      await engine.stop()
    }
  })

  test('rows of a paused mailbox go back to wait out the pause; they do not hold the worker from other mailboxes', async () => {
    // Two places to send, both first claimed by a mailbox whose sending quota is spent (15 minutes).
    await gate('x').pause('spent@example.com', 15 * 60_000)
    const engine = createTestEngine(t, {
      config: { concurrency: 2 },
      deps: { gate: pgGate('w', { max: 2 }) },
    })
    try {
      const spent = [
        await enqueue(t, {
          from: 'spent@example.com',
          to: 'r@example.com',
          subject: 's',
          text: 't',
        }),
        await enqueue(t, {
          from: 'spent@example.com',
          to: 'r@example.com',
          subject: 's',
          text: 't',
        }),
      ]
      const other = await enqueue(t, {
        from: 'other@example.com',
        to: 'r@example.com',
        subject: 's',
        text: 't',
      })
      await engine.start()
      await engine.events.waitFor(settledFor(other, 'sent'), 10_000)
      for (const id of spent) {
        await engine.events.waitFor(settledFor(id, 'throttled'), 10_000)
        const row = await t.pool.query(
          `select status, attempts, send_at > now() + interval '14 minutes' as later
             from mailer.email_outbox where id = $1`,
          [id],
        )
        // Not sent, not counted, due when the pause ends.
        expect(row.rows[0]).toEqual({ status: 'pending', attempts: 0, later: true })
      }
      expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([other])
    } finally {
      await engine.stop()
    }
  })

  test('one mailbox’s paced backlog does not hold up another mailbox’s rows, and its rows go back about once each', async () => {
    // The backlog's turns are held back until the other mailbox's row has gone out: a row of the
    // backlog waiting in place for its turn must not keep the other row from a place to send,
    // however slowly the claims pass the backlog (with its turns coming, a bound on how many of its
    // rows went first only measured how fast the claims ran against its 100 ms turns).
    // Past the 20 s wait for the other row, which fails first should it not go.
    const otherSent = boundedLatches(25_000).make('the other mailbox’s row sent')
    const backlogTurns = throughQueries(t, async (run, text, values) => {
      if (isTakePacing(text) && values.includes('backlog@example.com')) await otherSent.wait()
      return run()
    })
    // 600/min: one send per 100 ms from each mailbox; four places to send.
    const engine = createTestEngine(t, {
      config: { concurrency: 4 },
      deps: { gate: pgGate('w', { max: 4, rate: 600, db: backlogTurns }) },
    })
    const mail = (from: string) => ({ from, to: 'r@example.com', subject: 's', text: 't' })
    try {
      const backlog: string[] = []
      for (let i = 0; i < 60; i++) backlog.push(await enqueue(t, mail('backlog@example.com')))
      // Due after every backlog row, so claimed after them.
      const other = await enqueue(t, mail('other@example.com'))
      await engine.start()
      // Before: the backlog filled every place, so the other mailbox's row went out after all 60
      // (here, with the backlog's turns held back, never).
      await engine.events.waitFor(settledFor(other, 'sent'), 20_000)
      otherSent.resolve()
      for (const id of backlog) await engine.events.waitFor(settledFor(id, 'sent'), 30_000)
      const order = engine.sender.calls.map((m) => m.outboxId)
      expect(order[0]).toBe(other)
      expect(order).toHaveLength(61)
      // A backlog row goes back to a turn reserved for it, not every interval, and its history
      // records that once (a row whose turn was taken goes back again, recorded with the first).
      const back = await t.pool.query<{ code: string; most: number; total: number }>(
        `select error_code as code, max(n)::int as most, sum(n)::int as total
           from (select error_code, count(*) as n from mailer.email_attempts
                  where outcome = 'throttled' and outbox_id = any($1::bigint[])
                  group by outbox_id, error_code) x
          group by error_code`,
        [backlog],
      )
      expect(back.rows).toEqual([
        { code: 'mailbox_paced', most: expect.any(Number), total: expect.any(Number) },
      ])
      expect(back.rows[0]!.most).toBe(1)
      expect(back.rows[0]!.total).toBeLessThanOrEqual(60)
    } finally {
      otherSent.resolve()
      await engine.stop()
    }
  })

  test('one statement takes the slots of every send waiting at once', async () => {
    let statements = 0
    const db = t.db.withPlugin({
      transformQuery: (a) => {
        // Slot statements only.
        if (JSON.stringify(a.node).includes('mailer.send_slots')) statements += 1
        return a.node
      },
      transformResult: async (a) => a.result,
    })
    const a = gate('a', { max: 8, db })
    const signal = new AbortController().signal
    await (await a.acquire('m@example.com', signal))!.release()
    await a.close?.()
    // Eight sends at once: the first waiter's take is under way when the others join; the next
    // take serves all seven of them.
    statements = 0
    const b = gate('b', { max: 8, db })
    const permits = await Promise.all(
      Array.from({ length: 8 }, () => b.acquire('m@example.com', signal)),
    )
    expect(permits.every((p) => p !== null)).toBe(true)
    expect(statements).toBeGreaterThanOrEqual(1)
    expect(statements).toBeLessThanOrEqual(2)
    const held = await t.pool.query(
      `select count(distinct token)::int as n from mailer.send_slots where expires_at > now()`,
    )
    expect(held.rows[0].n).toBe(8)
    for (const p of permits) await p!.release()
    await b.close?.()
  })

  test('without pacing, a send reads its mailbox’s pause in its last check, not in a statement of its own', async () => {
    // Every statement the engine and its gate make, by what they touch.
    const seen: string[] = []
    const db = throughQueries(t, (run, text) => {
      seen.push(text)
      return run()
    })
    const engine = createTestEngine(t, {
      config: { concurrency: 4 },
      deps: { db, gate: pgGate('w', { max: 4, db }) },
    })
    try {
      await engine.start()
      const ids: string[] = []
      for (let i = 0; i < 20; i++) ids.push(await enqueue(t))
      for (const id of ids) await engine.events.waitFor(settledFor(id, 'sent'), 10_000)
    } finally {
      await engine.stop()
    }
    const count = (re: RegExp) => seen.filter((q) => re.test(q)).length
    // The worker's start notes its rate (pacing-rate.ts) once, before any send; a claim reads
    // MAIL_FROM's pause (and the probe it owes, sql/0062) in the claim's statement; the reclaim
    // clears stale owed probes (stale-probes.ts, at least once per lease length): no pause read.
    const notes = count(/noted as \(/)
    expect(notes).toBe(1)
    const pauseReads =
      count(/mailbox_pacing/) -
      notes -
      count(/stale_probes as \(/) -
      count(/start_sends[\s\S]*mailbox_pacing|mailbox_pacing[\s\S]*start_sends/) -
      count(/mailer\.claim_(batch|unflushed|notified)\([\s\S]*mailbox_pacing/)
    const starts = count(/start_sends/)
    // Before: about one pause read per send (shared by sends asking at once): 7 for these 20.
    expect(pauseReads).toBe(0)
    expect(starts).toBeGreaterThan(0)
  })

  test('a free lost with its connection is tried again: the slot is back in moments, not at its expiry', async () => {
    // The first free fails as a cut connection fails it (the fault suite's terminated LISTEN
    // session carried one); every other statement reaches the database.
    let failedFrees = 0
    const cutOnce = throughQueries(t, (run, text) => {
      if (failedFrees === 0 && text.includes("set expires_at = '-infinity'")) {
        failedFrees++
        return Promise.reject(new Error('Connection terminated unexpectedly'))
      }
      return run()
    })
    const a = gate('a', { max: 1, ttl: 60_000, db: cutOnce })
    const permit = await a.acquire('m@example.com', new AbortController().signal)
    const taken = await slotRow()
    expect(taken.free).toBe(false)
    await permit!.release()
    // Parked 50 ms, then freed: the lost statement costs a retry, not the slot's 60 s.
    await pollUntil(async () => ((await slotRow()).free ? true : undefined), 5_000)
    expect(failedFrees).toBe(1)
    expect((await slotRow()).token).toBe(taken.token)
    await a.close?.()
  })

  test('a take whose answer is lost with its connection gives back what it took: the slots are back in moments, not at their expiry', async () => {
    // The take commits, then its connection is cut before the answer arrives.
    let lostTakes = 0
    const cutAfterTake = throughQueries(t, async (run, text) => {
      const result = await run()
      if (lostTakes === 0 && text.includes('update mailer.send_slots t')) {
        lostTakes++
        throw new Error('Connection terminated unexpectedly')
      }
      return result
    })
    await ensureSlots(t.db, 2)
    const a = gate('a', { max: 2, ttl: 60_000, db: cutAfterTake })
    const signal = new AbortController().signal
    await expect(a.acquire('m@example.com', signal)).rejects.toThrow('Connection terminated')
    expect(lostTakes).toBe(1)
    // Another worker finds both slots free again without waiting out the 60 s.
    const b = gate('b', { max: 2 })
    const both = await Promise.all([
      b.acquire('m@example.com', AbortSignal.timeout(10_000)),
      b.acquire('m@example.com', AbortSignal.timeout(10_000)),
    ])
    expect(both.every((p) => p !== null)).toBe(true)
    for (const p of both) await p!.release()
    await a.close?.()
    await b.close?.()
  })

  test('closing the gate waits for a take still under way and frees what it took', async () => {
    // A worker stopping while a send waited for a slot: the take has committed, its answer is
    // still on its way when close() begins. The process exits once close() resolves (its pool
    // closed), so a slot freed only later stays held, for every worker, until its TTL.
    let answer = () => {}
    const answered = new Promise<void>((resolve) => {
      answer = resolve
    })
    const events: string[] = []
    let takes = 0
    const slowTake = throughQueries(t, async (run, text) => {
      const result = await run()
      if (text.includes('update mailer.send_slots t') && takes++ === 0) await answered
      if (text.includes("set expires_at = '-infinity'")) events.push('freed')
      return result
    })
    await ensureSlots(t.db, 1)
    const a = gate('a', { max: 1, ttl: 60_000, db: slowTake })
    const stop = new AbortController()
    const waiting = a.acquire('m@example.com', stop.signal)
    // The take committed (the slot is held in the database); its answer waits.
    await pollUntil(async () => ((await slotRow()).free ? undefined : true), 5_000)
    stop.abort()
    expect(await waiting).toBeNull()
    const closing = a.close!().then(() => events.push('closed'))
    answer()
    await closing
    expect(events).toEqual(['freed', 'closed'])
    expect((await slotRow()).free).toBe(true)
  })

  test('closing the gate gives back what a take whose answer was lost got, even when the first give-back failed', async () => {
    // The take commits and its answer is lost with its connection (a terminated backend); the
    // give-back of what it may have got fails too, and the worker is stopped meanwhile.
    let lostTakes = 0
    let refuseGiveBacks = true
    const cut = throughQueries(t, async (run, text) => {
      if (text.includes('token <> all') && refuseGiveBacks)
        throw new Error('Connection terminated unexpectedly')
      const result = await run()
      if (lostTakes === 0 && text.includes('update mailer.send_slots t')) {
        lostTakes++
        throw new Error('Connection terminated unexpectedly')
      }
      return result
    })
    await ensureSlots(t.db, 1)
    const a = gate('a', { max: 1, ttl: 60_000, db: cut })
    await expect(a.acquire('m@example.com', new AbortController().signal)).rejects.toThrow(
      'Connection terminated',
    )
    expect((await slotRow()).free).toBe(false)
    const closing = a.close!()
    refuseGiveBacks = false
    await closing
    // The process exits now: nothing of this worker's may stay held for the 60 s TTL.
    expect((await slotRow()).free).toBe(true)
  })

  test('a parked slot that reaches its reuse age while a flush frees another is freed, not forgotten', async () => {
    // The flush sorts parked slots into stale (freed) and kept. The clock moves on while it frees
    // the stale ones (issuing a statement takes time on a loaded machine): a slot that turns too
    // old for reuse meanwhile must land on one side, else nobody frees it and it stays held, for
    // every worker, until its TTL, even after a clean stop (chaos soak, seed 381, lookup).
    let now = 1_000_000
    const clock: Clock = { now: () => now, sleep: systemClock.sleep }
    let flushes = 0
    // Moves the clock past the reuse window (500 ms) when the first free statement is issued.
    const ageOnFree = t.db.withPlugin({
      transformQuery(args) {
        const node = args.node as { kind: string; sqlFragments?: readonly string[] }
        const text = node.kind === 'RawNode' ? (node.sqlFragments ?? []).join('?') : ''
        if (text.includes("set expires_at = '-infinity'") && flushes++ === 0) now += 400
        return args.node
      },
      transformResult: async (args) => args.result,
    })
    await ensureSlots(t.db, 2)
    const a = gate('a', { max: 2, ttl: 60_000, clock, db: ageOnFree })
    const signal = new AbortController().signal
    const [first, second] = await Promise.all([
      a.acquire('m@example.com', signal),
      a.acquire('m@example.com', signal),
    ])
    // Parked 100 ms apart: the flush 50 ms after the first frees that one and keeps the other.
    await first!.release()
    now += 100
    await second!.release()
    await pollUntil(async () => (flushes > 0 ? true : undefined), 5_000)
    await a.close?.()
    const held = await t.pool.query(`select slot from mailer.send_slots where expires_at > now()`)
    expect(held.rows).toEqual([])
  })

  test('a wall clock stepped back while a slot is in use keeps it renewed: no other worker takes it', async () => {
    // Renewal is due a third of the TTL after the last one was sent. On the wall clock a step back
    // made that "not yet" for an hour: the slot expired in the database while its send ran, and
    // another worker's take got it (two sends on one slot, past Graph's concurrency per mailbox).
    const step = { ms: 0 }
    const a = gate('a', { max: 1, ttl: RENEWED_TTL_MS, clock: steppedClock(step) })
    const permit = await a.acquire('m@example.com', new AbortController().signal)
    await expectKeptPastItsFirstExpiry(() => {
      step.ms = -3_600_000
    })
    await permit!.release()
    await a.close?.()
  })

  test('a wall clock stepped back does not keep a parked slot for reuse past its expiry', async () => {
    // A parked slot is freed parkMs after parking and handed to a send only within reuseMs of its
    // take. On the wall clock a step back kept it parked and "young" for an hour: unrenewed, it
    // expired in the database, another worker took it, and the next send here reused it anyway.
    const step = { ms: 0 }
    const a = gate('a', { max: 1, ttl: 1_000, clock: steppedClock(step) })
    const signal = new AbortController().signal
    const first = await a.acquire('m@example.com', signal)
    await first!.release()
    step.ms = -3_600_000
    // Another worker gets the slot: freed by the park's flush, or (before) expired after 1 s.
    const rival = await pollUntil(async () => {
      const got = await takeSlots(t.db, { want: 1, max: 1, holder: 'b', ttlMs: 1_000 })
      return got.length > 0 ? got[0] : undefined
    }, 5_000)
    const second = await a.acquire('m@example.com', signal)
    // Granted only once the rival's slot expired, and on a take of its own.
    expect((await slotRow()).token).not.toBe(rival.token)
    await second!.release()
    await a.close?.()
  })

  test('a take lost as the wall clock steps forward still gives back what it took', async () => {
    // Whether the lost take's slots have expired by themselves was judged on the wall clock: a
    // step forward said yes, and the slots stayed held, for every worker, their whole TTL.
    const step = { ms: 0 }
    let lostTakes = 0
    const cutAfterTake = throughQueries(t, async (run, text) => {
      const result = await run()
      if (lostTakes === 0 && text.includes('update mailer.send_slots t')) {
        lostTakes++
        step.ms = 3_600_000
        throw new Error('Connection terminated unexpectedly')
      }
      return result
    })
    await ensureSlots(t.db, 2)
    const a = gate('a', { max: 2, ttl: 60_000, db: cutAfterTake, clock: steppedClock(step) })
    const signal = new AbortController().signal
    await expect(a.acquire('m@example.com', signal)).rejects.toThrow('Connection terminated')
    // Both slots are free again in moments, not in 60 s.
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select count(*)::int as n from mailer.send_slots where expires_at > now()`,
      )
      return r.rows[0].n === 0 ? true : undefined
    }, 5_000)
    await a.close?.()
  })

  test('a free lost as the wall clock steps forward is tried again, not left until its expiry', async () => {
    // Whether a retry could still matter was judged on the wall clock: a step forward said the
    // slot had expired anyway, and it stayed held, for every worker, its whole 60 s TTL.
    const step = { ms: 0 }
    let failedFrees = 0
    const cutOnce = throughQueries(t, (run, text) => {
      if (failedFrees === 0 && text.includes("set expires_at = '-infinity'")) {
        failedFrees++
        step.ms = 3_600_000
        return Promise.reject(new Error('Connection terminated unexpectedly'))
      }
      return run()
    })
    const a = gate('a', { max: 1, ttl: 60_000, db: cutOnce, clock: steppedClock(step) })
    const permit = await a.acquire('m@example.com', new AbortController().signal)
    await permit!.release()
    await pollUntil(async () => ((await slotRow()).free ? true : undefined), 5_000)
    expect(failedFrees).toBe(1)
    await a.close?.()
  })

  test('a send that asks for a slot as the keeper’s take ends is served, not left without a take', async () => {
    // The second ask comes from the first's answer: in the microtask turn between the take loop's
    // last look at the waiting sends and the moment it counts as ended. A free slot is in the
    // database; nobody gives one back.
    await ensureSlots(t.db, 2)
    const keeper = createSlotKeeper({
      db: t.db,
      clock: systemClock,
      log: silentLogger,
      holder: 'a',
      max: 2,
      ttlMs: 30_000,
      maxWaitMs: 20,
      reuseMs: 500,
      parkMs: 50,
    })
    const signal = new AbortController().signal
    let second: SendPermit | null | undefined
    const first = await keeper.acquire(signal).then((p) => {
      void keeper.acquire(signal).then((q) => {
        second = q
      })
      return p
    })
    await pollUntil(async () => (second !== undefined ? true : undefined), 5_000)
    expect(second).not.toBeNull()
    await first!.release()
    await second!.release()
    await keeper.close()
  })

  test('a slot given to the freer as its statement loop ends is freed, not left until its TTL', async () => {
    // The second free comes k microtask turns after the first one's statement answers; one k lands
    // between the loop's last look at its queue and the moment it counts as ended.
    await ensureSlots(t.db, 2)
    for (let k = 0; k < 40; k++) {
      await t.pool.query(`update mailer.send_slots set expires_at = '-infinity'`)
      const [a, b] = await takeSlots(t.db, { want: 2, max: 2, holder: 'f', ttlMs: 30_000 })
      const held = (h: { slot: number; token: string }) => ({ ...h, takenAt: 0, sureAt: 0 })
      let freer: ReturnType<typeof createSlotFreer> | undefined
      let hooked = false
      const db = throughQueries(t, async (run, text) => {
        const r = await run()
        if (text.includes("'-infinity'") && !hooked) {
          hooked = true
          let turns = k
          const later = () => (turns-- > 0 ? queueMicrotask(later) : freer!.free([held(b!)]))
          queueMicrotask(later)
        }
        return r
      })
      freer = createSlotFreer({ db, clock: systemClock, log: silentLogger, ttlMs: 30_000 })
      freer.free([held(a!)])
      await pollUntil(
        async () => {
          const { rows } = await t.pool.query(
            `select count(*)::int as n from mailer.send_slots where expires_at > now()`,
          )
          return rows[0].n === 0 ? true : undefined
        },
        // Well under the slots' 30 s TTL, which would free them anyway.
        15_000,
        5,
      ).catch(() => {
        throw new Error(
          `a slot freed ${k} microtask turns after the first free's answer stayed held`,
        )
      })
      await freer.close()
    }
  })

  test('closing the gate answers a send still waiting for a slot, and frees what it held', async () => {
    const a = gate('a', { max: 1 })
    const signal = new AbortController().signal
    const held = await a.acquire('m@example.com', signal)
    const waiting = a.acquire('m@example.com', signal)
    await held!.release() // to the waiting send, not to the database
    const second = await waiting
    expect(second).not.toBeNull()
    const third = a.acquire('m@example.com', signal)
    await a.close?.()
    expect(await third).toBeNull()
    await second!.release()
    await pollUntil(async () => ((await slotRow()).free ? true : undefined), 5_000)
  })
})

// The pause is the one line the gate writes about a mailbox: it names none (src/log.ts's rule).
test('a mailbox paused after a throttle, or for Graph refusing it, is logged with its pause and cause, never its address', async () => {
  const lines: string[] = []
  const g = createPgSendGate({
    db: t.db,
    clock: systemClock,
    log: createLogger('debug', (l) => lines.push(l)),
    holder: 'logged',
    maxConcurrency: 2,
    ratePerMinute: 0,
    slotTtlMs: 30_000,
    maxWaitMs: 20,
  })
  await g.pause(' Ops.Desk@Example.com ', 1500)
  // Graph refusing the mailbox (MAIL_FROM mistyped) pauses it too, said as a refusal with its code.
  await g.pause(' Ops.Desk@Example.com ', 300_000, { code: 'ErrorInvalidUser', httpStatus: 404 })
  expect(lines.map((l) => JSON.parse(l))).toEqual([
    expect.objectContaining({ msg: 'mailbox paused after a provider throttle', pauseMs: 1500 }),
    expect.objectContaining({
      msg: 'mailbox paused: Graph refuses it',
      pauseMs: 300_000,
      code: 'ErrorInvalidUser',
      httpStatus: 404,
    }),
  ])
  expect(lines.join('\n').toLowerCase()).not.toContain('ops.desk@example.com')
})
