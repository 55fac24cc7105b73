// MAILBOX_RATE_PER_MINUTE changed across a restart with a paced backlog: the next turns come at the new rate.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import type { SendGate, SendPermit } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). Past the sum
// of a test's own bounds (its waits for events and polls: up to 70 s), so that on a loaded machine
// a wait's bound, not the test's timeout, tells what failed: a test cut off at its timeout runs on
// beside the next one, its engine taking the next test's rows.
setDefaultTimeout(90_000)

const t = useTestDb({ resetEach: true })
const MAILBOX = 'paced@example.com'

const pgGate = (holder: string, rate: number) =>
  createPgSendGate({
    db: t.db,
    clock: systemClock,
    log: silentLogger,
    holder,
    maxConcurrency: 4,
    ratePerMinute: rate,
    slotTtlMs: 30_000,
    maxWaitMs: 20,
  })

/** A worker as serve wires Graph's gate, at `rate` sends per mailbox per minute. */
const worker = (holder: string, rate: number) =>
  createTestEngine(t, {
    workerId: holder,
    config: { concurrency: 4 },
    deps: { gate: pgGate(holder, rate) },
  })

const mail = () => ({ from: MAILBOX, to: 'r@example.com', subject: 's', text: 't' })

/** The mailbox's pacing row: its next send time and the turn before it, in database time. */
async function pacingRow() {
  const r = await t.pool.query<{ next_at: Date; now: Date }>(
    'select next_at, now() from mailer.mailbox_pacing where mailbox = $1',
    [MAILBOX],
  )
  return r.rows[0]
}

/** Until `n` of `ids` went back to a pacing turn reserved for them. */
async function pacedBack(ids: string[], n: number) {
  await pollUntil(async () => {
    const r = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox
        where id = any($1::bigint[]) and status = 'pending' and last_error_code = 'mailbox_paced'`,
      [ids],
    )
    return r.rows[0]!.n >= n ? true : undefined
  })
}

describe('MAILBOX_RATE_PER_MINUTE changed across a restart', () => {
  test('raised: the backlog reserved under the old rate goes at the new rate, not one old interval at a time', async () => {
    // One a minute: one row is sent, another waits in place for its turn a minute on, the others
    // go back to turns reserved 2, 3, 4 and 5 minutes out.
    const slow = worker('slow', 1)
    const ids: string[] = []
    for (let i = 0; i < 6; i++) ids.push(await enqueue(t, mail()))
    await slow.start()
    try {
      await slow.events.waitFor((e) => e.type === 'settled' && e.outcome === 'sent', 20_000)
      await pacedBack(ids, 4)
    } finally {
      await slow.stop()
    }
    const sentFirst = slow.sender.calls.map((m) => m.outboxId)
    expect(sentFirst).toHaveLength(1)
    const rest = ids.filter((id) => !sentFirst.includes(id))
    // The reserved turns lie minutes out, in database time.
    const far = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox
        where id = any($1::bigint[]) and send_at > now() + interval '90 seconds'`,
      [ids],
    )
    expect(far.rows[0]!.n).toBeGreaterThanOrEqual(3)
    // Restarted at 6,000 a minute (one send per 10 ms): every row of the backlog goes now.
    const fast = worker('fast', 6000)
    await fast.start()
    try {
      // The bound only ends a failing wait early: at the old rate the last would go in 5 minutes.
      const allSent = async () =>
        (await statusesOf(rest)).every((s) => s === 'sent') ? true : undefined
      await pollUntil(allSent, 20_000).catch(() => {})
      expect(await statusesOf(rest)).toEqual(rest.map(() => 'sent'))
      expect(fast.sender.calls.map((m) => m.outboxId).sort()).toEqual(rest.sort())
    } finally {
      await fast.stop()
    }
  })

  test('raised: the first send under the new rate does not wait out the old interval as a pause', async () => {
    const slow = worker('slow', 1)
    const first = await enqueue(t, mail())
    await slow.start()
    try {
      await slow.events.waitFor(settledFor(first, 'sent'), 20_000)
    } finally {
      await slow.stop()
    }
    // The old rate's next turn is a minute away.
    const before = (await pacingRow())!
    expect(before.next_at.getTime() - before.now.getTime()).toBeGreaterThan(30_000)
    const fast = worker('fast', 6000)
    const next = await enqueue(t, mail())
    await fast.start()
    try {
      const settled = await fast.events.waitFor(settledFor(next), 20_000)
      expect(settled).toMatchObject({ outcome: 'sent' })
      expect(await historyCodes(next)).toEqual([null])
    } finally {
      await fast.stop()
    }
  })

  test('lowered: the first turn after the restart comes the new interval after the last one, no sooner', async () => {
    // 6,000 a minute (10 ms), then 20 a minute (3 s).
    const fast = worker('fast', 6000)
    const first = await enqueue(t, mail())
    await fast.start()
    try {
      await fast.events.waitFor(settledFor(first, 'sent'), 20_000)
    } finally {
      await fast.stop()
    }
    // The last turn taken: the next send time less the old interval.
    const lastTurn = (await pacingRow())!.next_at.getTime() - 10
    const slow = worker('slow', 20)
    const next = await enqueue(t, mail())
    await slow.start()
    try {
      await slow.events.waitFor(settledFor(next, 'sent'), 20_000)
    } finally {
      await slow.stop()
    }
    // Its turn was taken at least 3 s (database time) after the last one: the next send time it
    // set lies one more interval on (less a millisecond, as a Date keeps them). Taken at once, it
    // lay one interval past the restart.
    const after = (await pacingRow())!.next_at.getTime()
    expect(after - lastTurn).toBeGreaterThanOrEqual(5_999)
  })
})

describe('several workers with different rates at once (a rolling deploy)', () => {
  test('every worker paces by the newest worker’s rate, from its start on', async () => {
    // An old worker at one a minute takes a turn: its next lies a minute out.
    const old = pgGate('old', 1)
    await old.start!()
    await (await permitOf(old.acquire(MAILBOX, AbortSignal.timeout(10_000)))).release()
    // A new one starts at 6,000 a minute: the old worker's next turn is 10 ms after its last,
    // not a minute (which it would answer as a pause: it never waits a minute in place).
    const fresh = pgGate('new', 6000)
    await fresh.start!()
    for (const g of [old, fresh, old]) {
      await (await permitOf(g.acquire(MAILBOX, AbortSignal.timeout(10_000)))).release()
    }
    // A worker that starts later at one a minute (a machine of the old release restarted) is the
    // newest: the next turn, whoever takes it, is a minute after the last.
    const restarted = pgGate('restarted', 1)
    await restarted.start!()
    const waited: number[] = []
    const ask = new AbortController()
    const fast = createPgSendGate({
      db: t.db,
      clock: {
        now: systemClock.now,
        sleep: (ms, s) => {
          waited.push(ms)
          ask.abort()
          return systemClock.sleep(ms, s)
        },
      },
      log: silentLogger,
      holder: 'fast',
      maxConcurrency: 4,
      ratePerMinute: 6000,
      slotTtlMs: 30_000,
    })
    expect(await fast.acquire(MAILBOX, ask.signal)).toBeNull()
    // It waited in place for its turn (not a 10 ms one, not as for a pause), 5 s at a time: the
    // longest the gate sleeps at once, the turn lying further.
    expect(waited).toEqual([5_000])
    const rate = await t.pool.query<{ s: number }>(
      `select extract(epoch from turn_interval)::float8 as s from mailer.mailbox_pacing where mailbox = 'pacing rate'`,
    )
    expect(rate.rows).toEqual([{ s: 60 }])
    for (const g of [old, fresh, restarted, fast]) await g.close?.()
  })
})

/** The permit an acquire answered; a pause, a reserved turn or none fails the test. */
async function permitOf(asked: ReturnType<SendGate['acquire']>): Promise<SendPermit> {
  const p = await asked
  expect(p === null ? 'none' : 'release' in p ? 'permit' : p).toBe('permit')
  return p as SendPermit
}

/** A row's history, the error code of each attempt. */
async function historyCodes(id: string) {
  const r = await t.pool.query<{ error_code: string | null }>(
    'select error_code from mailer.email_attempts where outbox_id = $1 order by id',
    [id],
  )
  return r.rows.map((x) => x.error_code)
}

/** The rows' statuses, in the order of `ids`. */
async function statusesOf(ids: string[]) {
  const r = await t.pool.query<{ id: string; status: string }>(
    'select id::text, status from mailer.email_outbox where id = any($1::bigint[])',
    [ids],
  )
  return ids.map((id) => r.rows.find((x) => x.id === id)?.status)
}
