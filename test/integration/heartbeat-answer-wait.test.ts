// A send whose lease only a heartbeat still on its way can confirm with the send's margin waits for that answer (at most until it could no longer), and is sent or given back by it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock } from '../../src/clock.ts'
import { openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import type { Lease } from '../../src/outbox/claim.ts'
import type { DeliveryDeps } from '../../src/outbox/deliver.ts'
import { deliverBatch } from '../../src/outbox/deliver.ts'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'
import { createLeaseHeartbeat } from '../../src/outbox/lease-heartbeat.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import type { SendGate } from '../../src/outbox/send-gate.ts'
import { createSlots, type Slots } from '../../src/outbox/slots.ts'
import { createStartQueue } from '../../src/outbox/start-queue.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { startAnswerHoldingProxy } from '../support/answer-holding-proxy.ts'
import { claimAsW1 } from '../support/claim-as-w1.ts'
import { useTestDb } from '../support/db.ts'
import { deliveryDeps } from '../support/delivery-deps.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { untilLockWaits } from '../support/lock-waits.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const { closing } = endedAfterEach()

/**
 * One row claimed (recorded as started: its send has no last check) at monotonic 1,000,000 for
 * 30 s, and a heartbeat of it sent at 1,010,000 whose statement has run and committed when this
 * returns but whose answer the proxy holds. The margin for a short send is 3 s: the claim's confirmation holds up to
 * 1,027,000, the heartbeat's, once answered, up to 1,037,000. `taken`: another claim took the row
 * before the heartbeat's statement ran; `lastCheck`: the row has an expiry, so the claim leaves its
 * last check to its send slot (sql/0017); `waitRunsOut`: a wait on the clock ends at once, the
 * monotonic clock then where it would be (else it sleeps, until its signal; `waitHeld`: only its
 * signal ends it); `gated`: claimed as a gate that waits claims (Graph), its last check to come;
 * `busy`: another transaction holds the row locked when the heartbeat's statement runs (it skips
 * it), until unlock(); `otherBusy`: another row of the worker's, claimed beside it, was skipped as
 * busy by an earlier heartbeat, whose retry of it still waits for that row's lock, until
 * unlockOther().
 */
async function heartbeatUnanswered(
  o: {
    taken?: boolean
    lastCheck?: boolean
    waitRunsOut?: boolean
    waitHeld?: boolean
    gated?: boolean
    busy?: boolean
    otherBusy?: boolean
  } = {},
) {
  const proxy = await startAnswerHoldingProxy(t.url)
  const handle = openDb({ name: 'test', url: proxy.url, log: silentLogger, maxConnections: 2 })
  closing.push(async () => {
    proxy.release()
    await handle.close()
    proxy.close()
  })
  const inOneHour = { expiresAt: new Date(Date.now() + 3600_000).toISOString() }
  const id = await enqueue(t, undefined, o.lastCheck ? inOneHour : {})
  const other = o.otherBusy ? await enqueue(t) : null
  const leases = await claimAsW1(t.db, { markStarted: !o.gated, limit: other ? 2 : 1 })
  /** The waits asked of the clock, in ms. */
  const waits: number[] = []
  let mono = 1_000_000
  const clock: Clock = {
    ...systemClock,
    monotonic: () => mono,
    sleep: async (ms, signal) => {
      waits.push(ms)
      if (o.waitRunsOut) mono += ms
      else if (o.waitHeld) await new Promise((end) => signal?.addEventListener('abort', end))
      else await systemClock.sleep(ms, signal)
    },
  }
  const deadlines = createLeaseDeadlines(clock, 30_000)
  deadlines.confirm(leases, mono)
  const events: EngineEvent[] = []
  const heartbeat = createLeaseHeartbeat(
    {
      dbName: 'test',
      db: handle.db,
      worker: { id: 'w1', host: 'h', pid: 1, version: 't' },
      config: { leaseSeconds: 30 },
      clock,
      log: silentLogger,
      onEvent: (e) => events.push(e),
      held: new Map<string, Lease>(leases.map((l) => [l.id, l])),
      settling: () => false,
      deadlines,
    },
    (p) => p,
    () => false,
  )
  if (o.taken)
    await t.pool.query(
      'update mailer.email_outbox set lease_token = gen_random_uuid() where id = $1',
      [id],
    )
  const otherLocked = other ? await holdRowLocked(t.pool, other) : null
  if (otherLocked) {
    // Before the proxy's handle: its retry waits for this lock.
    closing.unshift(() => otherLocked.end('rollback'))
    await heartbeat()
    await untilLockWaits(t.pool)
  }
  const beatsBefore = await registryBeats()
  const locked = o.busy ? await holdRowLocked(t.pool, id) : null
  if (locked) closing.push(() => locked.end('rollback'))
  mono = 1_010_000
  proxy.holdAnswerOnceAt('locked as materialized')
  const beat = heartbeat()
  await pollUntil(async () => (proxy.holding() ? true : undefined))
  // The proxy holds from the statement's sending, not its running: the statement has run (its
  // registry beat committed) before any delivery starts. Else a last check (start_sends) that
  // locked the row first had the heartbeat skip it as busy, and the send waited on for the busy
  // row's retry (a second wait). Busy: it ran while the row was held.
  await pollUntil(async () => ((await registryBeats()) !== beatsBefore ? true : undefined))
  const sender = createFakeSender()
  const deps = deliveryDeps(t.db, { sender, clock, deadlines, onEvent: (e) => events.push(e) })
  return {
    id,
    beat,
    events,
    deadlines,
    sender,
    waits,
    /** Moves the monotonic clock to `at`, then delivers the row (with `over` in its deps). */
    deliverAt(at: number, over: Partial<DeliveryDeps> = {}) {
      mono = at
      return deliverBatch(
        { ...deps, ...over },
        leases.filter((l) => l.id === id),
      )
    },
    /** Another row, claimed (as the first) and confirmed now, delivered with `over` in its deps. */
    async deliverAnother(over: Partial<DeliveryDeps> = {}) {
      const other = await enqueue(t)
      const claimed = await claimAsW1(t.db, { markStarted: !o.gated })
      deadlines.confirm(claimed, mono)
      return { id: other, delivering: deliverBatch({ ...deps, ...over }, claimed) }
    },
    /** `gate`, whose second permit (the one taken again after the wait) takes `ms` to come. */
    slowRetake(gate: SendGate, ms: number): SendGate {
      let asked = 0
      return {
        ...gate,
        async acquire(...args) {
          const permit = await gate.acquire(...args)
          asked += 1
          if (asked === 2) mono += ms
          return permit
        },
      }
    },
    /** A last check asked with 1 s of margin to spare, answered with none (a slow database). */
    slowLastCheck(): DeliveryDeps['start'] {
      const start = createStartQueue((l) => startSends(t.db, l))
      return async (rows, slow) => {
        const started = await start(rows, slow)
        mono += 2_000
        return started
      }
    },
    unlock: () => locked?.end('commit'),
    unlockOther: () => otherLocked?.end('commit'),
    /** Once `delivering` waits on the clock, the heartbeat's answer comes; then it is over. */
    async answerWhileWaiting(delivering: Promise<void>) {
      expect(
        await Promise.race([
          delivering.then(() => 'given up without waiting'),
          pollUntil(async () => (waits.length > 0 ? 'waiting' : undefined)),
        ]),
      ).toBe('waiting')
      await this.answer()
      await delivering
    },
    /** The heartbeat's answer comes, and is taken in. */
    async answer() {
      proxy.release()
      await beat
    },
    lost: () => events.filter((e) => e.type === 'lease_lost'),
  }
}

/** Worker w1's registry beat as last committed ('' before its first): each heartbeat moves it. */
async function registryBeats(): Promise<string> {
  const { rows } = await t.pool.query<{ at: string }>(
    `select last_heartbeat_at::text as at from mailer.workers where id = 'w1'`,
  )
  return rows[0]?.at ?? ''
}

const CONFIRMED_LATE = 'lease confirmed by a heartbeat’s late answer; sending'

/** A logger at debug that keeps each line's message and row id. */
function loggedLines() {
  const lines: { msg: string; outboxId?: string }[] = []
  const logger = createLogger('debug', (line) => {
    const { msg, outboxId } = JSON.parse(line) as { msg: string; outboxId?: string }
    lines.push({ msg, ...(outboxId !== undefined && { outboxId }) })
  })
  return { logger, lines: () => lines }
}

test('a send whose lease the claim no longer holds with its margin, but a heartbeat on its way would, waits for that answer and is sent: no give-back, no lost lease', async () => {
  const h = await heartbeatUnanswered()
  const log = loggedLines()
  // 2 s of the claim's lease left: short of the margin, yet surely not ended.
  await h.answerWhileWaiting(h.deliverAt(1_028_000, { log: log.logger }))
  // At most until the heartbeat's extension, once answered, would leave no margin either.
  expect(h.waits).toEqual([9_000])
  expect(h.sender.calls.map((c) => c.outboxId)).toEqual([h.id])
  expect(h.lost()).toEqual([])
  // The wait is seen (the chaos soak's slow-database shape counts these lines).
  expect(log.lines()).toContainEqual({ msg: CONFIRMED_LATE, outboxId: h.id })
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'sent', attempts: 1 })
})

test('a heartbeat that does not answer before its extension would leave no margin: the row is given back unsent, counted lost once its deadline passed', async () => {
  const h = await heartbeatUnanswered({ waitRunsOut: true })
  const log = loggedLines()
  await h.deliverAt(1_028_000, { log: log.logger })
  expect(h.waits).toEqual([9_000])
  expect(h.sender.calls).toEqual([])
  expect(log.lines().map((l) => l.msg)).not.toContain(CONFIRMED_LATE)
  expect(h.lost()).toEqual([{ type: 'lease_lost', db: 'test', id: h.id, during: 'start' }])
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'pending', attempts: 0 })
  await h.answer()
})

test('a heartbeat that answers that another claim took the row: not sent, counted lost once', async () => {
  const h = await heartbeatUnanswered({ taken: true })
  await h.answerWhileWaiting(h.deliverAt(1_028_000))
  expect(h.sender.calls).toEqual([])
  expect(h.lost()).toEqual([{ type: 'lease_lost', db: 'test', id: h.id, during: 'heartbeat' }])
})

test('a last check that used up the margin, the lease extended by a heartbeat on its way: the send waits for that answer and is sent, no give-back', async () => {
  const h = await heartbeatUnanswered({ lastCheck: true })
  const delivering = h.deliverAt(1_026_000, { start: h.slowLastCheck() })
  await h.answerWhileWaiting(delivering)
  expect(h.waits).toEqual([9_000])
  expect(h.sender.calls.map((c) => c.outboxId)).toEqual([h.id])
  expect(h.lost()).toEqual([])
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'sent', attempts: 1 })
})

test('a heartbeat that skipped the row as busy (another transaction held it) answers first: the send waits on for the retry that extends it once the lock goes, and is sent', async () => {
  const h = await heartbeatUnanswered({ busy: true })
  const delivering = h.deliverAt(1_028_000)
  await h.unlock()
  // The first answer extends nothing (busy); the heartbeat's retry of the busy row, sent then, does.
  await h.answerWhileWaiting(delivering)
  // The first statement's bound, then its retry's (sent at 1,028,000: its extension holds to 1,055,000).
  expect(h.waits).toEqual([9_000, 27_000])
  expect(h.sender.calls.map((c) => c.outboxId)).toEqual([h.id])
  expect(h.lost()).toEqual([])
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'sent', attempts: 1 })
})

test("a heartbeat that skipped the row as busy while its retry of another busy row still waits for that row's lock: the send waits on for the statement that takes the row up after it, and is sent", async () => {
  const h = await heartbeatUnanswered({ busy: true, otherBusy: true })
  const delivering = h.deliverAt(1_028_000)
  try {
    await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
    // Both rows busy: no statement of its own is sent for the row while the retry of the other waits.
    await h.answer()
  } finally {
    await h.unlock()
    await h.unlockOther()
  }
  await delivering
  expect(h.sender.calls.map((c) => c.outboxId)).toEqual([h.id])
  // The first statement's bound, then the one to take the row up's (asked from 1,028,000).
  expect(h.waits).toEqual([9_000, 27_000])
  expect(h.lost()).toEqual([])
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'sent', attempts: 1 })
})

test('a stop during the wait gives the row back saying the stop, not slow heartbeats, and sends nothing, the answer coming after', async () => {
  const h = await heartbeatUnanswered()
  const stop = new AbortController()
  const lines: { level: string; msg: string }[] = []
  const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
  const delivering = h.deliverAt(1_028_000, { stopping: stop.signal, log })
  await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
  stop.abort()
  await delivering
  // Not counted lost by its give-back. (The answer may then find the row released: this test's
  // heartbeat holds it whatever its delivery did.)
  expect(h.lost()).toEqual([])
  await h.answer()
  expect(h.sender.calls).toEqual([])
  expect(lines.map((l) => [l.level, l.msg])).toEqual([
    ['info', "stopping: a row that waited for its heartbeat's answer is given back unsent"],
  ])
  expect(await rowOf(t, h.id)).toMatchObject({
    status: 'pending',
    attempts: 0,
    last_error_code: null,
    send_started_at: null,
  })
})

test("a gated row waiting for its heartbeat's answer gives its provider permit back meanwhile: another row of its mailbox is sent during the wait, the first once answered", async () => {
  const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
  // The process itself has room for two sends.
  const over = { gate: oneRequestGate(), slots: createSlots(2) }
  const first = h.deliverAt(1_028_000, over)
  await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
  const second = await h.deliverAnother(over)
  await pollUntil(async () =>
    h.sender.calls.some((c) => c.outboxId === second.id) ? true : undefined,
  )
  await h.answer()
  await Promise.all([first, second.delivering])
  expect(h.sender.calls.map((c) => c.outboxId)).toEqual([second.id, h.id])
  expect(h.lost()).toEqual([])
  for (const id of [h.id, second.id])
    expect(await rowOf(t, id)).toMatchObject({ status: 'sent', attempts: 1 })
})

/**
 * Graph's gate: one provider request at a time over every worker, unpaced unless `ratePerMinute`
 * says; closed after the test.
 */
function oneRequestGate(o: { ratePerMinute?: number } = {}): SendGate {
  const gate = createPgSendGate({
    db: t.db,
    clock: systemClock,
    log: silentLogger,
    holder: 'w1',
    maxConcurrency: 1,
    ratePerMinute: o.ratePerMinute ?? 0,
    slotTtlMs: 30_000,
    maxWaitMs: 20,
  })
  closing.push(async () => gate.close?.())
  return gate
}

test('a gated row whose last check used up the margin takes its permit again after the wait as the gate gives it: its mailbox paused meanwhile, it goes back uncounted, its start undone', async () => {
  const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
  const gate = oneRequestGate()
  const delivering = h.deliverAt(1_026_000, { gate, start: h.slowLastCheck() })
  await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
  // A throttle met by another worker's send while this row waited.
  await gate.pause('sender@example.com', 60_000)
  await h.answerWhileWaiting(delivering)
  expect(h.sender.calls).toEqual([])
  expect(h.lost()).toEqual([])
  expect(await rowOf(t, h.id)).toMatchObject({
    status: 'pending',
    attempts: 0,
    last_error_code: 'mailbox_paused',
    send_started_at: null,
  })
})

/**
 * The process slots and the gate's permits a delivery takes, counted: `held` now, `over` given
 * back more often than taken.
 */
function counted(slots: Slots, gate: SendGate) {
  const n = { slots: 0, permits: 0, over: 0 }
  const took = (ok: boolean) => {
    if (ok) n.slots += 1
    return ok
  }
  const counting: Slots = {
    ...slots,
    tryAcquire: () => took(slots.tryAcquire()),
    acquire: async (signal) => took(await slots.acquire(signal)),
    release() {
      if (n.slots === 0) n.over += 1
      n.slots -= 1
      slots.release()
    },
  }
  const countingGate: SendGate = {
    ...gate,
    async acquire(...args) {
      const p = await gate.acquire(...args)
      if (!p || 'pausedForMs' in p) return p
      n.permits += 1
      let given = false
      return {
        ...p,
        release() {
          if (given) n.over += 1
          given = true
          n.permits -= 1
          return p.release()
        },
      }
    },
  }
  return { n, over: { slots: counting, gate: countingGate } }
}

// A row another claim took is refused by its last check, with no wait after it.
for (const [ending, o] of [
  ['answered', {}],
  ['running out', { waitRunsOut: true }],
  ['a stop', { stop: true }],
  ['the lease lost', { taken: true }],
] as const)
  for (const afterCheck of 'taken' in o ? [false] : [false, true])
    test(`a wait ${afterCheck ? 'after' : 'before'} the last check that ends by ${ending}: every process slot and provider permit taken is given back once`, async () => {
      const h = await heartbeatUnanswered({ gated: true, ...o })
      const { n, over } = counted(createSlots(2), oneRequestGate())
      const stop = new AbortController()
      const delivering = afterCheck
        ? h.deliverAt(1_026_000, { ...over, stopping: stop.signal, start: h.slowLastCheck() })
        : h.deliverAt(1_028_000, { ...over, stopping: stop.signal })
      if ('waitRunsOut' in o) await delivering
      else if ('stop' in o) {
        await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
        stop.abort()
        await delivering
      } else await h.answerWhileWaiting(delivering)
      await h.answer()
      expect(h.waits).toEqual([9_000])
      expect(h.sender.calls).toHaveLength(ending === 'answered' ? 1 : 0)
      expect(n).toEqual({ slots: 0, permits: 0, over: 0 })
    })

test('a wait after the last check that throws (safe by construction): the process slot it gave back before the wait is not given back a second time', async () => {
  const h = await heartbeatUnanswered({ gated: true })
  const { n, over } = counted(createSlots(2), oneRequestGate())
  const deadlines = {
    ...h.deadlines,
    heldOnceAnswered: async () => {
      throw new Error('forced: the wait failed')
    },
  }
  const delivering = h.deliverAt(1_026_000, { ...over, deadlines, start: h.slowLastCheck() })
  // Whatever becomes of the row (the error is the drainer's to log), its slots are counted.
  await delivering.catch(() => {})
  await h.answer()
  expect(h.sender.calls).toEqual([])
  expect(n).toEqual({ slots: 0, permits: 0, over: 0 })
})

/**
 * Every write of sender@example.com's pacing row from now on, in order: `turn N ms` (a turn taken
 * under an interval of N ms), `throttle` (a throttle's pause set), `probe owed`, `moved back` (its
 * next send time moved earlier: a turn given back).
 */
async function pacingWrites() {
  await t.pool.query(`
    create table public.pacing_writes (n serial, what text not null);
    create function public.note_pacing_write() returns trigger language plpgsql as $$
    begin
      insert into public.pacing_writes (what) values (case
        when new.throttled_until is distinct from (case when tg_op = 'UPDATE' then old.throttled_until end) then 'throttle'
        when tg_op = 'UPDATE' and new.probe_owed and not old.probe_owed then 'probe owed'
        when tg_op = 'UPDATE' and new.next_at < old.next_at then 'moved back'
        else 'turn ' || (extract(epoch from new.turn_interval) * 1000)::int || ' ms' end);
      return new;
    end $$;
    create trigger note_pacing_write after insert or update on mailer.mailbox_pacing for each row
      when (new.mailbox = 'sender@example.com') execute function public.note_pacing_write();`)
  closing.push(async () => {
    await t.pool.query(
      'drop table public.pacing_writes; drop function public.note_pacing_write cascade',
    )
  })
  return async () =>
    (
      await t.pool.query<{ what: string }>('select what from public.pacing_writes order by n')
    ).rows.map((r) => r.what)
}

// A turn every 10 s: the row's wait for its heartbeat's answer, a loaded machine's too, ends well
// before its mailbox's next turn comes due (which would end the turn's keeping: kept-turn-wait.ts).
for (const afterCheck of [false, true])
  test(`a paced row waiting ${afterCheck ? 'after' : 'before'} its last check for its heartbeat's answer keeps the pacing turn it took: sent once answered, no second turn taken`, async () => {
    const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
    const writes = await pacingWrites()
    const gate = oneRequestGate({ ratePerMinute: 6 })
    const delivering = afterCheck
      ? h.deliverAt(1_026_000, { gate, start: h.slowLastCheck() })
      : h.deliverAt(1_028_000, { gate })
    await h.answerWhileWaiting(delivering)
    expect(h.sender.calls.map((c) => c.outboxId)).toEqual([h.id])
    // One turn, the row's own, taken before the wait.
    expect(await writes()).toEqual(['turn 10000 ms'])
    expect(await rowOf(t, h.id)).toMatchObject({ status: 'sent', attempts: 1 })
  })

test('a paced row keeping its turn waits out in place a brief throttle set during its wait for the heartbeat, then is sent under that turn', async () => {
  const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
  const writes = await pacingWrites()
  const gate = oneRequestGate({ ratePerMinute: 6 })
  // Whether each send started (in database time) no sooner than the throttle's end.
  const pastThrottle: boolean[] = []
  const sender = {
    ...h.sender,
    async send(...args: Parameters<typeof h.sender.send>) {
      const { rows } = await t.pool.query(
        `select now() >= throttled_until as past from mailer.mailbox_pacing where mailbox = 'sender@example.com'`,
      )
      pastThrottle.push(rows[0].past)
      return h.sender.send(...args)
    },
  }
  const delivering = h.deliverAt(1_028_000, { gate, sender })
  await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
  await gate.pause('sender@example.com', 300)
  await h.answerWhileWaiting(delivering)
  expect(pastThrottle).toEqual([true])
  expect(await writes()).toEqual(['turn 10000 ms', 'throttle'])
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'sent', attempts: 1 })
})

// The turn stays spent (kept-turn-wait.ts): given back, it could start a send inside the throttle.
for (const [meanwhile, what] of [
  ['a throttle past the hold', 'throttle'],
  ["a probe owed to another row (the throttle's pause over)", 'probe owed'],
] as const)
  test(`a paced row whose mailbox met ${meanwhile} during its wait for the heartbeat goes back uncounted, its turn spent, not given back`, async () => {
    const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
    const writes = await pacingWrites()
    const gate = oneRequestGate({ ratePerMinute: 60 })
    const delivering = h.deliverAt(1_028_000, { gate })
    await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
    if (what === 'throttle') await gate.pause('sender@example.com', 60_000)
    else {
      const probe = await enqueue(t)
      await t.pool.query(
        `update mailer.mailbox_pacing set probe_owed = true, probe_id = $1 where mailbox = 'sender@example.com'`,
        [probe],
      )
    }
    await h.answerWhileWaiting(delivering)
    expect(h.sender.calls).toEqual([])
    expect(h.lost()).toEqual([])
    expect(await writes()).toEqual(['turn 1000 ms', what])
    expect(await rowOf(t, h.id)).toMatchObject({
      status: 'pending',
      attempts: 0,
      last_error_code: 'mailbox_paused',
    })
  })

// A pause's cause goes with the row it sends back (0172), the kept turn's wait too: a refusal met
// by another worker (its transport knows nothing of it) is no throttle.
test('a paced row whose mailbox Graph refused during its wait for the heartbeat goes back saying the refusal, not a throttle', async () => {
  const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
  const gate = oneRequestGate({ ratePerMinute: 60 })
  const delivering = h.deliverAt(1_028_000, { gate })
  await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
  await gate.pause('sender@example.com', 300_000, { code: 'ErrorAccessDenied', httpStatus: 403 })
  await h.answerWhileWaiting(delivering)
  expect(h.sender.calls).toEqual([])
  const { rows } = await t.pool.query(
    `select status, attempts, last_error_code as code, last_error as words,
            send_at > now() + interval '4 minutes' as later
       from mailer.email_outbox where id = $1`,
    [h.id],
  )
  expect(rows).toEqual([
    {
      status: 'pending',
      attempts: 0,
      code: 'mailbox_paused',
      words:
        "not sent: the sender mailbox it names is refused by Graph: paused, its rows tried again at the pause's end",
      later: true,
    },
  ])
})

// The kept turn is the row's only while it is the mailbox's last one taken and the next is not due:
// sent under a turn another row took since, the two sends would go out together.
test("a paced row whose mailbox's next turn another worker's row took during its wait for the heartbeat takes a turn of its own again: not sent before that turn's interval is over", async () => {
  const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
  const writes = await pacingWrites()
  const gate = oneRequestGate({ ratePerMinute: 60 })
  // When the other row's turn leaves the mailbox's next send time, and whether each send started
  // (in database time) no sooner.
  let otherTurnEnds = ''
  const pastOtherTurn: boolean[] = []
  const sender = {
    ...h.sender,
    async send(...args: Parameters<typeof h.sender.send>) {
      const { rows } = await t.pool.query('select now() >= $1::timestamptz as past', [
        otherTurnEnds,
      ])
      pastOtherTurn.push(rows[0].past)
      return h.sender.send(...args)
    },
  }
  const delivering = h.deliverAt(1_028_000, { gate, sender })
  await pollUntil(async () => (h.waits.length > 0 ? true : undefined))
  // The row's interval run out meanwhile, another worker's row took the next turn (as takePacing
  // leaves it).
  const { rows } = await t.pool.query(
    `update mailer.mailbox_pacing set next_at = now() + turn_interval
      where mailbox = 'sender@example.com' returning next_at::text as at`,
  )
  otherTurnEnds = rows[0].at
  await h.answerWhileWaiting(delivering)
  expect(pastOtherTurn).toEqual([true])
  expect(await writes()).toEqual(['turn 1000 ms', 'turn 1000 ms', 'turn 1000 ms'])
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'sent', attempts: 1 })
})

test("a row whose permit, taken again after its heartbeat's late answer, comes too late for the send's margin is given back saying so, not blaming the heartbeats", async () => {
  const h = await heartbeatUnanswered({ gated: true, waitHeld: true })
  const lines: { level: string; msg: string }[] = []
  const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
  // The answer extends the lease to 1,040,000 (held with the margin up to 1,037,000); the permit
  // comes 10 s after it (other rows held every provider slot), at 1,038,000.
  const gate = h.slowRetake(oneRequestGate(), 10_000)
  await h.answerWhileWaiting(h.deliverAt(1_028_000, { gate, log }))
  expect(h.sender.calls).toEqual([])
  expect(h.lost()).toEqual([])
  expect(lines.map((l) => [l.level, l.msg])).toEqual([
    [
      'warn',
      "lease confirmed by a heartbeat's late answer ran short of the send's margin while the send took its slots again; not sending",
    ],
  ])
  expect(await rowOf(t, h.id)).toMatchObject({ status: 'pending', attempts: 0 })
})
