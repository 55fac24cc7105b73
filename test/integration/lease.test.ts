// Leases in the database: claimBatch and its plan, fencing and reclaim, settleLeases, markSent, the throttle deadline, expiry, lease upkeep.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import pg from 'pg'
import { type Clock, monotonicNow, systemClock } from '../../src/clock.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { cancelOutboxRow } from '../../src/outbox/cancel.ts'
import { type ClaimParams, claimBatch } from '../../src/outbox/claim.ts'
import { deliverBatch } from '../../src/outbox/deliver.ts'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { extendLeases } from '../../src/outbox/heartbeat.ts'
import { createHeldLeases } from '../../src/outbox/held-leases.ts'
import { lookupOnly } from '../../src/outbox/lease.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'
import { createLeaseUpkeep } from '../../src/outbox/lease-upkeep.ts'
import { markSent } from '../../src/outbox/mark-sent.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { requeueOutboxRow } from '../../src/outbox/requeue.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import type { SettleQueue } from '../../src/outbox/settle-queue.ts'
import { createSettlements } from '../../src/outbox/settlements.ts'
import { createStartQueue } from '../../src/outbox/start-queue.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { claimAsW1 } from '../support/claim-as-w1.ts'
import { useTestDb } from '../support/db.ts'
import { deliveryDeps, testSettlements } from '../support/delivery-deps.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { untilLockWaits } from '../support/lock-waits.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const claim = (limit: number, workerId = 'w1', leaseSeconds = 30) =>
  claimBatch(t.db, { limit, workerId, leaseSeconds, defaultMaxAttempts: 3 }).then((c) => c.leases)
const settleParams = { workerId: 'w1', defaultMaxAttempts: 3, throttleDeadlineSeconds: 86400 }
const settleOne = (id: string, token: string, settlement: Settlement) =>
  settleLeases(t.db, [{ id, token, settlement, startedAt: null }], settleParams)
const retryOf = (code: string, delayMs: number, throttled = false): Settlement => ({
  kind: 'retry',
  code,
  message: code,
  delayMs,
  throttled,
  ambiguous: false,
})
const expireLease = (id: string) =>
  t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )

// Shared buffers (hit + read) a statement touches, from EXPLAIN (ANALYZE, BUFFERS), rolled back.
async function buffersTouched(client: pg.ClientBase, statement: string): Promise<number> {
  await client.query('begin')
  try {
    const plan = await client.query<{
      'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }]
    }>(`explain (analyze, buffers, format json) ${statement}`)
    const top = plan.rows[0]!['QUERY PLAN'][0].Plan
    return top['Shared Hit Blocks'] + top['Shared Read Blocks']
  } finally {
    await client.query('rollback')
  }
}

describe('claimBatch', () => {
  test('orders by priority, then send_at, then id, and counts the attempt', async () => {
    const low = await enqueue(t, undefined, { priority: 5 })
    const first = await enqueue(t, undefined, { priority: -1 })
    const mid = await enqueue(t)
    const leases = await claim(10)
    // In claim order, so the local queue sends the most urgent first.
    expect(leases.map((l) => l.id)).toEqual([first, mid, low])
    const order = await t.pool.query(
      `select id from mailer.email_outbox order by priority, send_at, id`,
    )
    expect(order.rows.map((r) => r.id)).toEqual([first, mid, low])
    expect(leases.every((l) => l.attempt === 1 && l.token.length === 36)).toBe(true)
    const row = await rowOf(t, low)
    expect(row).toMatchObject({ status: 'sending', attempts: 1, lease_owner: 'w1' })
    expect(row.lease_expires_at.getTime()).toBeGreaterThan(Date.now() + 20_000)
  })

  test('a limit spanning priorities takes them in order, past locked and scheduled rows', async () => {
    const later = { sendAt: new Date(Date.now() + 3600_000).toISOString() }
    const urgent = [
      await enqueue(t, undefined, { priority: -3 }),
      await enqueue(t, undefined, { priority: -3 }),
    ]
    await enqueue(t, undefined, { ...later, priority: -3 })
    const locked = await enqueue(t)
    const normal = [await enqueue(t), await enqueue(t), await enqueue(t)]
    await enqueue(t, undefined, { ...later, priority: 0 })
    const lazy = await enqueue(t, undefined, { priority: 7 })
    const other = await holdRowLocked(t.pool, locked)
    try {
      // Fills up inside priority 0: the rest of 0 and priority 7 are left for the next claim.
      const first = await claim(4)
      expect(first.map((l) => l.id)).toEqual([...urgent, ...normal.slice(0, 2)])
      const second = await claimBatch(t.db, {
        limit: 10,
        workerId: 'w1',
        leaseSeconds: 30,
        defaultMaxAttempts: 3,
      })
      expect(second.leases.map((l) => l.id)).toEqual([...normal.slice(2), lazy])
      // Short: the earliest scheduled row over the priorities it visited (an hour from now).
      expect(second.nextDueInMs).toBeGreaterThan(3500_000)
      expect(second.nextDueInMs).toBeLessThanOrEqual(3600_000)
    } finally {
      await other.end('rollback')
    }
    expect((await claim(10)).map((l) => l.id)).toEqual([locked])
  })

  test('two concurrent claimers get disjoint rows covering everything', async () => {
    for (let i = 0; i < 200; i++) await enqueue(t)
    const [a, b] = await Promise.all([claim(150, 'a'), claim(150, 'b')])
    const ids = [...a, ...b].map((l) => l.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids.length).toBe(200)
  })

  test('skips a row locked by another transaction', async () => {
    const locked = await enqueue(t)
    const free = await enqueue(t)
    const c = await holdRowLocked(t.pool, locked)
    try {
      const leases = await claim(10)
      expect(leases.map((l) => l.id)).toEqual([free])
    } finally {
      await c.end('rollback')
    }
  })

  test('does not claim a row scheduled in the future', async () => {
    await enqueue(t, undefined, { sendAt: new Date(Date.now() + 3600_000).toISOString() })
    expect(await claim(10)).toEqual([])
  })

  test('a claim short of its limit says when the next row is due; a full one does not look', async () => {
    await enqueue(t)
    await enqueue(t)
    await enqueue(t, undefined, { sendAt: new Date(Date.now() + 60_000).toISOString() })
    const params = { workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }
    const full = await claimBatch(t.db, { ...params, limit: 1 })
    expect(full.leases).toHaveLength(1)
    expect(full.nextDueInMs).toBeNull()
    const short = await claimBatch(t.db, { ...params, limit: 10 })
    expect(short.leases).toHaveLength(1)
    expect(short.nextDueInMs).toBeGreaterThan(50_000)
    expect(short.nextDueInMs).toBeLessThanOrEqual(60_000)
    const none = await claimBatch(t.db, { ...params, limit: 10 })
    expect(none.leases).toEqual([])
    expect(none.nextDueInMs).toBeGreaterThan(50_000)
  })

  test('the next due row is the earliest over every priority, however many rows are scheduled', async () => {
    const at = (ms: number) => ({ sendAt: new Date(Date.now() + ms).toISOString() })
    // Many rows due next week at the most urgent priority, the earliest one at a lazy priority.
    await t.pool.query(
      `insert into mailer.email_outbox (message, priority, send_at)
       select jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                                 'subject', 's', 'text', 't'), -100, now() + interval '7 days' + g * interval '1 s'
         from generate_series(1, 20000) g`,
    )
    await enqueue(t, undefined, { ...at(3600_000), priority: 0 })
    await enqueue(t, undefined, { ...at(120_000), priority: 50 })
    await enqueue(t, undefined, { ...at(7200_000), priority: 100 })
    await enqueue(t)
    await t.pool.query('analyze mailer.email_outbox')
    const params = { workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }
    const short = await claimBatch(t.db, { ...params, limit: 10 })
    expect(short.leases).toHaveLength(1)
    expect(short.nextDueInMs).toBeGreaterThan(110_000)
    expect(short.nextDueInMs).toBeLessThanOrEqual(120_000)
    // Cheap whatever is scheduled: a short claim reads a few index pages per priority in use, not
    // every scheduled row (20,000 entries here).
    await enqueue(t)
    const client = await t.pool.connect()
    try {
      const claimTen = `select mailer.claim_batch(10, 'w1', gen_random_uuid(), 30, false, 3)`
      expect(await buffersTouched(client, claimTen)).toBeLessThan(60)
    } finally {
      client.release()
    }
  })

  // Postgres 17 and older have no B-tree skip scan: a claim that scanned the index in (priority,
  // send_at, id) order with only send_at <= now() walked every later entry, read 100 pages here.
  test('a pickup reads a few pages however many rows its own priority has scheduled', async () => {
    await t.pool.query(
      `insert into mailer.email_outbox (message, send_at)
       select jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                                 'subject', 's', 'text', 't'), now() + interval '7 days' + g * interval '1 s'
         from generate_series(1, 20000) g`,
    )
    await t.pool.query('analyze mailer.email_outbox')
    const due = await enqueue(t)
    const client = await t.pool.connect()
    const claimTen = `select mailer.claim_batch(10, 'w1', gen_random_uuid(), 30, false, 3)`
    try {
      // The first call in a session also reads the catalog (planning): measure the second.
      await client.query('begin')
      await client.query(claimTen)
      await client.query('rollback')
      expect(await buffersTouched(client, claimTen)).toBeLessThan(60)
    } finally {
      client.release()
    }
    expect((await claim(10)).map((l) => l.id)).toEqual([due])
  })
})

describe('claim_unflushed', () => {
  // What its transaction commits with: only a claim that is not the record of a send may skip the
  // flush (the last check before the send commits synchronously and flushes the claim with it).
  async function commitModeAfterClaim(markStarted: boolean) {
    const c = await t.pool.connect()
    try {
      // The test cluster runs with synchronous_commit off; production's default is on.
      await c.query('set synchronous_commit = on')
      await c.query('begin')
      const r = await c.query<{ claim: { leases: unknown[] } }>(
        markStarted
          ? `select mailer.claim_batch(10, 'w1', gen_random_uuid(), 30, true, 3) as claim`
          : `select mailer.claim_unflushed(10, 'w1', gen_random_uuid(), 30, 3) as claim`,
      )
      const mode = (
        await c.query<{ m: string }>(`select current_setting('synchronous_commit') as m`)
      ).rows[0]!.m
      await c.query('commit')
      const after = (
        await c.query<{ m: string }>(`select current_setting('synchronous_commit') as m`)
      ).rows[0]!.m
      return { claimed: r.rows[0]!.claim.leases.length, mode, after }
    } finally {
      await c.query('reset synchronous_commit')
      c.release()
    }
  }

  test('a claim that does not record sends as started commits without a flush; claim_batch, with', async () => {
    await enqueue(t)
    await enqueue(t)
    expect(await commitModeAfterClaim(false)).toEqual({ claimed: 2, mode: 'off', after: 'on' })
    await enqueue(t)
    expect(await commitModeAfterClaim(true)).toEqual({ claimed: 1, mode: 'on', after: 'on' })
  })
})

describe('fencing and reclaim', () => {
  test('an expired lease is reclaimed and the old holder’s late completion is rejected', async () => {
    const id = await enqueue(t)
    const [old] = await claim(1)
    await expireLease(id)
    const { rows: reclaimed } = await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    expect(reclaimed).toEqual([{ id, status: 'pending', ambiguous: false }])
    const late = await settleOne(id, old!.token, { kind: 'sent' })
    expect(late).toEqual([])
    expect((await rowOf(t, id)).status).toBe('pending')
    // The new holder's lease works; the old token is refused by heartbeat and start too.
    const [fresh] = await claim(1, 'w2')
    expect(fresh!.token).not.toBe(old!.token)
    expect([...(await extendLeases(t.db, worker, [old!], 30))]).toEqual([])
    expect((await startSends(t.db, [old!])).lost.has(id)).toBe(true)
    const history = await attemptsOf(t, id, 'outcome')
    expect(history.map((r) => r.outcome)).toEqual(['lease_expired'])
  })

  test('the last check refuses a lease that ended unreclaimed: nothing started, handed back or reclaimed as unstarted', async () => {
    const handedBack = await enqueue(t)
    const reclaimed = await enqueue(t)
    const leases = await claim(2)
    for (const id of [handedBack, reclaimed]) await expireLease(id)
    // Nobody has reclaimed them yet. Started now, a reclaim could take either mid-send, as
    // ambiguous, and send it again.
    const r = await startSends(t.db, leases)
    expect(r.started.size).toBe(0)
    expect([...r.lost].sort()).toEqual([handedBack, reclaimed].sort())
    for (const id of [handedBack, reclaimed]) {
      expect(await rowOf(t, id)).toMatchObject({
        status: 'sending',
        attempts: 1,
        send_started_at: null,
      })
    }
    // Its holder may still hand it back uncounted (fenced by its token), as the engine does ...
    const back = leases.find((l) => l.id === handedBack)!
    expect(await settleOne(handedBack, back.token, { kind: 'released' })).toMatchObject([
      { id: handedBack, status: 'pending' },
    ])
    expect(await rowOf(t, handedBack)).toMatchObject({ attempts: 0, send_started_at: null })
    // ... or a reclaim takes it like any ended lease: no send began, so no ambiguity.
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 3 })).rows).toEqual([
      { id: reclaimed, status: 'pending', ambiguous: false },
    ])
  })

  test('two leases of one row (a stale one and the claim that followed) asked for together: only the live one starts', async () => {
    // A lease that waited (for a slot, in the local queue) while heartbeats failed is reclaimed and
    // the row claimed again, here or elsewhere: its last check must not read the new lease's start
    // as its own, or both send.
    const other = await enqueue(t)
    const id = await enqueue(t)
    const [busy] = await claim(1)
    const [stale] = await claim(1)
    expect([busy!.id, stale!.id]).toEqual([other, id])
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    const [live] = await claim(1, 'w2')
    expect(live!.id).toBe(id)
    const start = createStartQueue((leases) => startSends(t.db, leases))
    // The first check goes out alone; the two asked for while it runs would share the next one.
    const first = start([busy!])
    const staleCheck = start([stale!])
    const liveCheck = start([live!])
    expect((await first).started.has(other)).toBe(true)
    const s = await staleCheck
    expect({ started: s.started.has(id), lost: s.lost.has(id) }).toEqual({
      started: false,
      lost: true,
    })
    expect((await liveCheck).started.has(id)).toBe(true)
  })

  test('two leases of one row settled in one batch: the stale one reads as lost, not as the live one’s outcome', async () => {
    const id = await enqueue(t)
    const [stale] = await claim(1)
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    const [live] = await claim(1, 'w2')
    const settle = testSettlements(t.db)
    const item = (token: string, settlement: Settlement) => ({
      id,
      token,
      settlement,
      startedAt: null,
    })
    // Pushed in one tick: one statement.
    const [staleRelease, liveRetry] = await Promise.all([
      settle.push(item(stale!.token, { kind: 'released' })),
      settle.push(item(live!.token, retryOf('http_500', 0))),
    ])
    expect(liveRetry).toMatchObject({ id, outcome: 'retry' })
    expect(staleRelease).toBeNull()
    // Likewise for sends: the lean statement answers by id too.
    const [next] = await claim(1, 'w3')
    const [staleSent, liveSent] = await Promise.all([
      settle.push(item(live!.token, { kind: 'sent' })),
      settle.push(item(next!.token, { kind: 'sent' })),
    ])
    expect(liveSent).toMatchObject({ id, outcome: 'sent' })
    expect(staleSent).toBeNull()
  })

  test('a lease expired after the send started is reclaimed as ambiguous', async () => {
    const id = await enqueue(t)
    const [lease] = await claim(1)
    await startSends(t.db, [lease!])
    await expireLease(id)
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 3 })).rows).toEqual([
      { id, status: 'pending', ambiguous: true },
    ])
    const [again] = await claim(1)
    expect(again!.ambiguous).toBe(true)
    // The history names the worker whose lease ran out: where to look for a possible duplicate.
    const history = await attemptsOf(t, id, 'attempt, worker_id, outcome')
    expect(history).toEqual([{ attempt: 1, worker_id: 'w1', outcome: 'lease_expired' }])
  })

  test('the mark of an interrupted send survives a second crash and a release', async () => {
    const id = await enqueue(t)
    const [first] = await claim(1)
    await startSends(t.db, [first!])
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 9 })
    // The next holder dies before resolving the ambiguity: the one after must still see it.
    const [second] = await claim(1)
    expect(second!.ambiguous).toBe(true)
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 9 })
    const [third] = await claim(1)
    expect(third!.ambiguous).toBe(true)
    // A holder that gives the row back unresolved (shutdown) keeps the mark too ...
    await settleLeases(
      t.db,
      [
        {
          id,
          token: third!.token,
          settlement: { kind: 'released' },
          ambiguous: true,
          startedAt: null,
        },
      ],
      settleParams,
    )
    const [fourth] = await claim(1)
    expect(fourth!.ambiguous).toBe(true)
    // ... while a clean row released before its send is clean again.
    const clean = await enqueue(t)
    const [c] = await claimAsW1(t.db)
    expect(c).toMatchObject({ id: clean, started: true, ambiguous: false })
    await settleOne(clean, c!.token, { kind: 'released' })
    const [again] = await claim(1)
    expect(again).toMatchObject({ id: clean, ambiguous: false })
  })

  test('reclaiming a row with no attempts left fails it', async () => {
    const id = await enqueue(t, undefined, { maxAttempts: 1 })
    await claim(1)
    await expireLease(id)
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 3 })).rows).toMatchObject([
      { id, status: 'failed' },
    ])
    expect(await rowOf(t, id)).toMatchObject({ status: 'failed', last_error_code: 'lease_expired' })
  })

  test('a cancel recorded on a claimed row whose worker died cancels it at reclaim, attempts left or not', async () => {
    const last = await enqueue(t, undefined, { maxAttempts: 1 })
    const more = await enqueue(t, undefined, { maxAttempts: 5 })
    await claim(2)
    // 202: the send had not started, so the cancel is recorded for the worker, which then dies.
    for (const id of [last, more]) {
      expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'sending' })
      await expireLease(id)
    }
    const { rows: reclaimed } = await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    expect(reclaimed.sort((a, b) => Number(a.id) - Number(b.id))).toEqual([
      { id: last, status: 'cancelled', ambiguous: false },
      { id: more, status: 'cancelled', ambiguous: false },
    ])
    for (const id of [last, more]) {
      expect(await rowOf(t, id)).toMatchObject({
        status: 'cancelled',
        last_error_code: 'cancelled',
      })
    }
    expect(await claim(2)).toEqual([])
  })

  test('heartbeat extends only live leases and registers the worker', async () => {
    const id = await enqueue(t)
    const [lease] = await claim(1, 'w1', 5)
    const before = (await rowOf(t, id)).lease_expires_at.getTime()
    const alive = await extendLeases(t.db, worker, [lease!], 120)
    expect([...alive]).toEqual([id])
    expect((await rowOf(t, id)).lease_expires_at.getTime()).toBeGreaterThan(before + 60_000)
    const w = await t.pool.query('select id, host from mailer.workers')
    expect(w.rows).toEqual([{ id: worker.id, host: 'h' }])
  })
})

describe('settleLeases', () => {
  test('retry reschedules with the delay and keeps the error; exhausting attempts fails the row', async () => {
    const id = await enqueue(t, undefined, { maxAttempts: 2 })
    const retry = retryOf('graph_503', 60_000)
    let [l] = await claim(1)
    expect(await settleOne(id, l!.token, retry)).toMatchObject([
      { id, status: 'pending', outcome: 'retry' },
    ])
    const row = await rowOf(t, id)
    expect(row.send_at.getTime()).toBeGreaterThan(Date.now() + 50_000)
    expect(row).toMatchObject({ attempts: 1, last_error_code: 'graph_503', lease_token: null })
    await t.pool.query('update mailer.email_outbox set send_at = now() where id = $1', [id])
    ;[l] = await claim(1)
    await settleOne(id, l!.token, retry)
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      attempts: 2,
      last_error_code: 'graph_503',
      last_error: expect.stringContaining('attempts exhausted'),
    })
    const history = await attemptsOf(t, id, 'attempt, outcome, error_code')
    expect(history).toEqual([
      { attempt: 1, outcome: 'retry', error_code: 'graph_503' },
      { attempt: 2, outcome: 'failed', error_code: 'graph_503' },
    ])
  })

  test('a throttle does not count against max_attempts', async () => {
    const id = await enqueue(t, undefined, { maxAttempts: 1 })
    const [l] = await claim(1)
    await settleOne(id, l!.token, retryOf('throttled', 1000, true))
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending', attempts: 0 })
  })

  test('a row throttled again past THROTTLE_DEADLINE_SECONDS since its first throttle fails; one within it waits', async () => {
    const [old, young] = [await enqueue(t), await enqueue(t)]
    // Its run of uncounted waits began two minutes ago.
    await t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, outcome, finished_at)
       values ($1, 1, 'throttled', now() - interval '2 minutes')`,
      [old],
    )
    const refused: Settlement = {
      kind: 'retry',
      code: 'AADSTS700027',
      message: 'invalid_client: AADSTS700027: The certificate is not registered',
      delayMs: 60_000,
      throttled: true,
      ambiguous: false,
    }
    const leases = await claim(2)
    const settled = await settleLeases(
      t.db,
      leases.map((l) => ({ id: l.id, token: l.token, settlement: refused, startedAt: null })),
      { ...settleParams, throttleDeadlineSeconds: 60 },
    )
    expect(settled.map((s) => [s.id, s.status]).sort()).toEqual(
      [
        [old, 'failed'],
        [young, 'pending'],
      ].sort(),
    )
    expect(await rowOf(t, old)).toMatchObject({
      status: 'failed',
      last_error_code: 'throttled',
      last_error: expect.stringContaining('AADSTS700027'),
    })
    expect(await rowOf(t, young)).toMatchObject({ status: 'pending', attempts: 0 })
  })

  test('a row still throttled at its expiresAt fails with code expired, never sent late', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 30_000).toISOString(),
    })
    const [l] = await claim(1)
    expect(await settleOne(id, l!.token, retryOf('ApplicationThrottled', 60_000, true))).toEqual([
      // Its entry numbers the throttled attempt, given back (attempts 0).
      { id, status: 'failed', outcome: 'expired', code: 'expired', attempt: 1 },
    ])
    // Its error says what held it back until then, not THROTTLE_DEADLINE_SECONDS (a day by default).
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      attempts: 0,
      last_error_code: 'expired',
      last_error: expect.stringMatching(/^still throttled at its expiresAt: ApplicationThrottled/),
    })
  })

  test('a throttled row that meets THROTTLE_DEADLINE_SECONDS before its expiresAt fails as throttled', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    })
    await t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, outcome, finished_at)
       values ($1, 1, 'throttled', now() - interval '2 minutes')`,
      [id],
    )
    const [l] = await claim(1)
    await settleLeases(
      t.db,
      [
        {
          id,
          token: l!.token,
          settlement: retryOf('ApplicationThrottled', 1000, true),
          startedAt: null,
        },
      ],
      { ...settleParams, throttleDeadlineSeconds: 60 },
    )
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      last_error_code: 'throttled',
      last_error: expect.stringMatching(/^still throttled at the throttle deadline: /),
    })
  })

  test('an interrupted send throttled until its expiresAt keeps its mark for a lookup', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 30_000).toISOString(),
    })
    const [l] = await claim(1)
    const lookupFailed: Settlement = {
      kind: 'retry',
      code: 'lookup_failed',
      message: 'lookup_failed',
      delayMs: 60_000,
      throttled: true,
      ambiguous: true,
    }
    await settleOne(id, l!.token, lookupFailed)
    const row = await rowOf(t, id)
    expect(row).toMatchObject({ status: 'failed', last_error_code: 'expired' })
    expect(row.send_started_at).not.toBeNull()
  })

  test('a gateway timeout (lookups off) still throttled at its expiresAt or its throttle deadline says the send may have delivered it', async () => {
    const atExpiry = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 30_000).toISOString(),
    })
    const atDeadline = await enqueue(t)
    const leases = await claim(2)
    const gatewayTimeout: Settlement = {
      kind: 'retry',
      code: 'http_504',
      message: 'Gateway Timeout',
      delayMs: 60_000,
      throttled: true,
      ambiguous: true,
    }
    await settleLeases(
      t.db,
      leases.map((l) => ({
        id: l.id,
        token: l.token,
        settlement: gatewayTimeout,
        startedAt: null,
      })),
      // Its run of uncounted waits begins now: a deadline of 0 s has passed.
      { ...settleParams, throttleDeadlineSeconds: 0 },
    )
    const ended = async (id: string) => {
      const r = await rowOf(t, id)
      return { status: r.status, code: r.last_error_code, error: r.last_error }
    }
    expect([await ended(atExpiry), await ended(atDeadline)]).toEqual([
      {
        status: 'failed',
        code: 'expired',
        error:
          'still throttled at its expiresAt: Gateway Timeout (an interrupted send may have delivered it)',
      },
      {
        status: 'failed',
        code: 'throttled',
        error:
          'still throttled at the throttle deadline: Gateway Timeout (an interrupted send may have delivered it)',
      },
    ])
  })

  test('a retry that would land after expiresAt fails the row as expired', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 30_000).toISOString(),
    })
    const [l] = await claim(1)
    await settleOne(id, l!.token, retryOf('network', 60_000))
    expect(await rowOf(t, id)).toMatchObject({ status: 'failed', last_error_code: 'expired' })
  })

  test('a batch settles many rows in one statement, each fenced separately', async () => {
    const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
    const leases = await claim(3)
    const items = leases.map((l, i) => ({
      id: l.id,
      token: i === 2 ? crypto.randomUUID() : l.token,
      settlement: { kind: 'sent' as const },
      startedAt: new Date(),
    }))
    const settled = await settleLeases(t.db, items, settleParams)
    expect(settled.map((s) => s.id).sort()).toEqual([ids[0]!, ids[1]!].sort())
    expect((await rowOf(t, ids[2]!)).status).toBe('sending')
  })
  test('a provider’s text holding NUL (which Postgres text cannot hold) is recorded without it, and the rest of its batch with it, by either settlement', async () => {
    await enqueue(t)
    await enqueue(t)
    await enqueue(t)
    const [rejected, other, sent] = await claim(3)
    const settled = await settleLeases(
      t.db,
      [
        {
          id: rejected!.id,
          token: rejected!.token,
          settlement: {
            kind: 'failed',
            code: 'ErrorInvalidRecipients',
            message: 'bad\u0000 address',
          },
          startedAt: new Date(),
          requestId: 'req\u0000-1',
        },
        {
          id: other!.id,
          token: other!.token,
          settlement: retryOf('http_500', 60_000),
          startedAt: null,
        },
      ],
      settleParams,
    )
    expect(settled.map((r) => [r.id, r.outcome]).sort()).toEqual(
      [
        [rejected!.id, 'failed'],
        [other!.id, 'retry'],
      ].sort(),
    )
    expect(await attemptsOf(t, rejected!.id, 'error, request_id')).toEqual([
      { error: 'bad address', request_id: 'req-1' },
    ])
    const marked = await markSent(
      t.db,
      [
        {
          id: sent!.id,
          token: sent!.token,
          settlement: { kind: 'sent' },
          startedAt: null,
          requestId: 'req\u0000-2',
        },
      ],
      'w1',
    )
    expect([...marked.sent]).toEqual([sent!.id])
    expect(await attemptsOf(t, sent!.id, 'request_id')).toEqual([{ request_id: 'req-2' }])
  })
})

describe('markSent', () => {
  test('settles successful sends with their history, fenced like settleLeases', async () => {
    const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
    const leases = await claim(3)
    // Started, as every send is before it succeeds: the mark is what a sent row must lose.
    expect([...(await startSends(t.db, leases)).started].sort()).toEqual([...ids].sort())
    const startedAt = new Date(Date.now() - 1500)
    const items = leases.map((l, i) => ({
      id: l.id,
      token: i === 2 ? crypto.randomUUID() : l.token,
      settlement: { kind: 'sent' as const },
      startedAt,
      httpStatus: 202,
      requestId: `req-${i}`,
    }))
    const marked = await markSent(t.db, items, 'w1')
    expect(marked.busy).toEqual(new Set())
    expect([...marked.sent].sort()).toEqual([ids[0]!, ids[1]!].sort())
    expect(await rowOf(t, ids[0]!)).toMatchObject({
      status: 'sent',
      lease_token: null,
      lease_expires_at: null,
      send_started_at: null,
      last_error_code: null,
    })
    expect((await rowOf(t, ids[0]!)).sent_at).toBeInstanceOf(Date)
    expect((await rowOf(t, ids[2]!)).status).toBe('sending')
    const history = await t.pool.query(
      `select outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id
         from mailer.email_attempts order by outbox_id`,
    )
    expect(history.rows).toEqual([
      {
        outbox_id: ids[0],
        attempt: 1,
        worker_id: 'w1',
        started_at: startedAt,
        outcome: 'sent',
        http_status: 202,
        request_id: 'req-0',
      },
      {
        outbox_id: ids[1],
        attempt: 1,
        worker_id: 'w1',
        started_at: startedAt,
        outcome: 'sent',
        http_status: 202,
        request_id: 'req-1',
      },
    ])
    expect(await markSent(t.db, [], 'w1')).toEqual({ sent: new Set(), busy: new Set() })
  })

  test('one batch mixes claims (tokens), sends without a start time, and no statuses at all', async () => {
    const ids = [await enqueue(t), await enqueue(t)]
    const first = await claim(1)
    ids.push(await enqueue(t), await enqueue(t))
    const second = await claim(3)
    expect(second[0]!.token).not.toBe(first[0]!.token)
    const leases = [second[0]!, first[0]!, second[1]!, second[2]!]
    const startedAt = new Date(Date.now() - 2500)
    const items = leases.map((l, i) => ({
      id: l.id,
      // The last row presents the other claim's token: fenced out.
      token: i === 3 ? first[0]!.token : l.token,
      settlement: { kind: 'sent' as const },
      // Found in the mailbox after an interrupted send: no start time of its own.
      startedAt: i === 2 ? null : startedAt,
    }))
    const marked = await markSent(t.db, items, 'w2')
    expect([...marked.sent].sort()).toEqual([ids[0]!, ids[1]!, ids[2]!].sort())
    expect((await rowOf(t, ids[3]!)).status).toBe('sending')
    const history = await t.pool.query(
      `select outbox_id, worker_id, started_at, outcome, http_status, request_id
         from mailer.email_attempts order by outbox_id`,
    )
    const row = (id: string, started: Date | null) => ({
      outbox_id: id,
      worker_id: 'w2',
      started_at: started,
      outcome: 'sent',
      http_status: null,
      request_id: null,
    })
    expect(history.rows).toEqual([
      row(ids[0]!, startedAt),
      row(ids[1]!, startedAt),
      row(ids[2]!, null),
    ])
  })
})

describe('row layout', () => {
  // An update that keeps a row on its page logs only the bytes it changed (sql/0005: the claimed
  // and settled columns last, page room from fillfactor and pruning). A batch claimed and settled
  // right after a bulk insert, the tightest case, must not move its rows to other pages.
  test('a claim and a settlement keep each row on its page', async () => {
    await t.pool.query(
      `insert into mailer.email_outbox (message)
       select jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                                 'subject', 'Order ' || i, 'text', repeat('x', (i % 7) * 40))
         from generate_series(1, 400) i`,
    )
    const pages = async () => {
      const r = await t.pool.query<{ id: string; page: number }>(
        `select id, (ctid::text::point)[0]::int as page from mailer.email_outbox order by id`,
      )
      return r.rows
    }
    const inserted = await pages()
    expect(new Set(inserted.map((r) => r.page)).size).toBeGreaterThan(10)
    const leases = await claim(400)
    expect(leases).toHaveLength(400)
    expect(await pages()).toEqual(inserted)
    const sent = await markSent(
      t.db,
      leases.map((l) => ({
        id: l.id,
        token: l.token,
        settlement: { kind: 'sent' as const },
        startedAt: new Date(),
        httpStatus: 202,
      })),
      'w1',
    )
    expect(sent.sent.size).toBe(400)
    expect(await pages()).toEqual(inserted)
  })
})

describe('claim plan', () => {
  // Statistics that say "no pending rows" (as right after a burst) must not turn every claim into a
  // scan and sort of the whole backlog: choosing 500 rows reads about as many pages as rows.
  // PL/pgSQL caches a statement's plan for the session. A plan made while the table was small
  // (a young outbox, statistics not yet refreshed) must not read the whole table once it has grown.
  // Autovacuum is held off the table meanwhile: an analyze of the grown table between the insert
  // and the measured call invalidated the plan, and the call's planning again (reading statistics
  // and catalogs, about 95 blocks) was counted in its buffers, failing a run now and then.
  const autovacuumHeldOff = async <T>(f: () => Promise<T>): Promise<T> => {
    await t.pool.query('alter table mailer.email_outbox set (autovacuum_enabled = off)')
    try {
      return await f()
    } finally {
      await t.pool.query('alter table mailer.email_outbox reset (autovacuum_enabled)')
    }
  }
  test('a claim reads its own rows, whatever the table size when its session planned it', async () => {
    // A session of its own: plan caching depends on what the session ran before.
    const client = new pg.Client({ connectionString: t.url })
    await client.connect()
    const claimOne = `select mailer.claim_batch(500, 'w1', gen_random_uuid(), 30, true, 3)`
    try {
      await autovacuumHeldOff(async () => {
        await enqueue(t)
        await client.query('analyze mailer.email_outbox')
        for (let i = 0; i < 8; i++) {
          await enqueue(t)
          await client.query(claimOne)
        }
        await t.pool.query(
          `insert into mailer.email_outbox (message, status, attempts, sent_at)
         select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'), 'sent', 1, now()
           from generate_series(1, 20000)`,
        )
        await enqueue(t)
        const plan = await client.query<{
          'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }]
        }>(`explain (analyze, buffers, format json) ${claimOne}`)
        const top = plan.rows[0]!['QUERY PLAN'][0].Plan
        const table = await client.query<{ pages: number }>(
          `select (pg_relation_size('mailer.email_outbox') / current_setting('block_size')::int)::int as pages`,
        )
        expect(table.rows[0]!.pages).toBeGreaterThan(500)
        expect(top['Shared Hit Blocks'] + top['Shared Read Blocks']).toBeLessThan(50)
      })
    } finally {
      await client.end()
    }
  })

  // Each statement a function runs has its own executor start-up and shut-down: a pickup's claim
  // runs the probe, one candidate scan per priority with due rows and the update, nothing else;
  // with nothing due, the probe alone (0006 ran five and four: two switched a setting around the update).
  test('a one-row claim runs three statements, an empty claim one', async () => {
    const client = new pg.Client({ connectionString: t.url })
    await client.connect()
    // auto_explain reports each statement it times: the call itself and each one the call ran.
    let reported = 0
    client.on('notice', (n) => {
      if (n.message?.startsWith('duration:')) reported++
    })
    const statementsRun = async () => {
      reported = 0
      await client.query(`select mailer.claim_batch(500, 'w1', gen_random_uuid(), 30, true, 3)`)
      return reported - 1
    }
    try {
      await client.query(`load 'auto_explain'`)
      await client.query(
        'set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on; set client_min_messages = log',
      )
      const id = await enqueue(t)
      expect(await statementsRun()).toBe(3)
      expect((await rowOf(t, id)).status).toBe('sending')
      expect(await statementsRun()).toBe(1)
    } finally {
      await client.end()
    }
  })

  test('the last check reads its own rows, whatever the table size when its session planned it', async () => {
    // A session of its own, whose cached plan is made while the table holds a handful of rows.
    const client = new pg.Client({ connectionString: t.url })
    await client.connect()
    const check = (ids: string[], tokens: string[]) =>
      client.query(`select * from mailer.start_sends_unlocked($1::bigint[], $2::uuid[])`, [
        ids,
        tokens,
      ])
    try {
      await autovacuumHeldOff(async () => {
        await client.query('analyze mailer.email_outbox')
        for (let i = 0; i < 8; i++) {
          const id = await enqueue(t)
          const [lease] = await claim(1)
          expect((await check([id], [lease!.token])).rows).toEqual([
            { id, started: true, cancelled: false, expired: false, busy: false },
          ])
        }
        await t.pool.query(
          `insert into mailer.email_outbox (message, status, attempts, sent_at)
         select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'), 'sent', 1, now()
           from generate_series(1, 20000)`,
        )
        const id = await enqueue(t)
        const [lease] = await claim(1)
        const plan = await client.query<{
          'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }]
        }>(
          `explain (analyze, buffers, format json) select * from mailer.start_sends_unlocked($1::bigint[], $2::uuid[])`,
          [[id], [lease!.token]],
        )
        const top = plan.rows[0]!['QUERY PLAN'][0].Plan
        const table = await client.query<{ pages: number }>(
          `select (pg_relation_size('mailer.email_outbox') / current_setting('block_size')::int)::int as pages`,
        )
        expect(table.rows[0]!.pages).toBeGreaterThan(500)
        expect(top['Shared Hit Blocks'] + top['Shared Read Blocks']).toBeLessThan(50)
        expect(await rowOf(t, id)).toMatchObject({ status: 'sending' })
        expect((await rowOf(t, id)).send_started_at).not.toBeNull()
      })
    } finally {
      await client.end()
    }
  })

  test('choosing rows reads a few pages even when statistics predate a large backlog', async () => {
    await t.pool.query('analyze mailer.email_outbox')
    await t.pool.query(
      `insert into mailer.email_outbox (message)
       select jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                                 'subject', 's', 'text', repeat('x', 1000))
         from generate_series(1, 20000)`,
    )
    const client = await t.pool.connect()
    // Buffers a claim of n rows touches (rolled back); the first call in a session also reads the
    // catalog (planning), so each size is measured on its second call.
    const claimBuffers = async (n: number) => {
      const claimN = `select mailer.claim_batch(${n}, 'w1', gen_random_uuid(), 30, false, 3) as claim`
      await client.query('begin')
      const r = await client.query<{ claim: { leases: unknown[] } }>(claimN)
      await client.query('rollback')
      expect(r.rows[0]!.claim.leases).toHaveLength(n)
      return buffersTouched(client, claimN)
    }
    try {
      const table = await client.query<{ pages: number }>(
        `select (pg_relation_size('mailer.email_outbox') / current_setting('block_size')::int)::int as pages`,
      )
      // A scan of the backlog reads every page at least once (and sorts 20,000 rows).
      const pages = table.rows[0]!.pages
      expect(pages).toBeGreaterThan(2000)
      expect(await claimBuffers(100)).toBeLessThan(pages / 4)
      // A small claim (as with Graph, bounded by free send slots) touches its own rows only.
      expect(await claimBuffers(5)).toBeLessThan(pages / 20)
    } finally {
      client.release()
    }
  })
})

const worker = { id: 'w-test', host: 'h', pid: 1, version: 't' }

describe('the throttle deadline', () => {
  const throttled = retryOf('ApplicationThrottled', 0, true)
  const throttleAgain = async (id: string) => {
    const [lease] = await claim(1)
    expect(lease?.id).toBe(id)
    return (await settleOne(id, lease!.token, throttled))[0]
  }

  test('a row waiting its mailbox’s pacing turns (our schedule, not a throttle) never fails for it', async () => {
    const id = await enqueue(t)
    // Given back for its turn two hours ago (a backlog longer than the deadline at the rate).
    await t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, finished_at)
       values ($1, 1, 'throttled', 'mailbox_paced', now() - interval '2 hours')`,
      [id],
    )
    const paced = retryOf('mailbox_paced', 60_000, true)
    const settleAs = async (s: Settlement) => {
      const [lease] = await claim(1)
      expect(lease?.id).toBe(id)
      const [row] = await settleLeases(
        t.db,
        [{ id, token: lease!.token, settlement: s, startedAt: null }],
        { ...settleParams, throttleDeadlineSeconds: 3600 },
      )
      await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
      return row
    }
    // Its turn came and the mailbox was busy still: given back again, not failed.
    expect(await settleAs(paced)).toMatchObject({ status: 'pending', outcome: 'throttled' })
    // A provider throttle after those turns starts the run the deadline counts from.
    expect(await settleAs(retryOf('ApplicationThrottled', 0, true))).toMatchObject({
      status: 'pending',
      outcome: 'throttled',
    })
    await t.pool.query(
      `update mailer.email_attempts set finished_at = now() - interval '2 hours'
        where outbox_id = $1 and error_code = 'ApplicationThrottled'`,
      [id],
    )
    expect(await settleAs(paced)).toMatchObject({ status: 'pending', outcome: 'throttled' })
    expect(await settleAs(retryOf('ApplicationThrottled', 0, true))).toMatchObject({
      status: 'failed',
      code: 'throttled',
    })
  })

  test('a row given back for its pacing turn again and again is recorded once, until something else happens', async () => {
    const id = await enqueue(t)
    const settleAs = async (s: Settlement) => {
      const [lease] = await claim(1)
      expect(lease?.id).toBe(id)
      await settleOne(id, lease!.token, s)
      await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
    }
    const paced = retryOf('mailbox_paced', 0, true)
    await settleAs(paced)
    await settleAs(paced)
    await settleAs(paced)
    await settleAs(retryOf('ApplicationThrottled', 0, true))
    await settleAs(paced)
    await settleAs(paced)
    const history = await attemptsOf(t, id, 'attempt, outcome, error_code')
    expect(history).toEqual([
      { attempt: 1, outcome: 'throttled', error_code: 'mailbox_paced' },
      { attempt: 1, outcome: 'throttled', error_code: 'ApplicationThrottled' },
      { attempt: 1, outcome: 'throttled', error_code: 'mailbox_paced' },
    ])
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending', attempts: 0 })
  })

  test('a row given back unsent for its mailbox’s pause again and again is recorded once, until something else happens; none of it is a send', async () => {
    const id = await enqueue(t)
    const settleAs = async (s: Settlement) => {
      const [lease] = await claim(1)
      expect(lease?.id).toBe(id)
      await settleOne(id, lease!.token, s)
      await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
    }
    const paused = retryOf('mailbox_paused', 0, true)
    await settleAs(paused)
    await settleAs(paused)
    await settleAs(retryOf('ApplicationThrottled', 0, true))
    await settleAs(paused)
    await settleAs(paused)
    expect(await attemptsOf(t, id, 'attempt, outcome, error_code')).toEqual([
      { attempt: 1, outcome: 'throttled', error_code: 'mailbox_paused' },
      { attempt: 1, outcome: 'throttled', error_code: 'ApplicationThrottled' },
      { attempt: 1, outcome: 'throttled', error_code: 'mailbox_paused' },
    ])
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending', attempts: 0, sent_at: null })
    // Nor does a failure record a send time.
    const [lease] = await claim(1)
    await settleOne(id, lease!.token, { kind: 'failed', code: 'rejected', message: 'no' })
    expect(await rowOf(t, id)).toMatchObject({ status: 'failed', sent_at: null })
  })

  test('a row that waits for a Graph token again and again is recorded once per run of such waits', async () => {
    const id = await enqueue(t)
    const settleAs = async (s: Settlement) => {
      const [lease] = await claim(1)
      expect(lease?.id).toBe(id)
      await settleOne(id, lease!.token, s)
      await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
    }
    // An Entra outage: a 500, then timeouts, then a dropped connection, each met once per backoff.
    await settleAs(retryOf('AADSTS50000', 5000, true))
    const first = await attemptsOf(t, id, 'finished_at')
    await settleAs(retryOf('token_timeout', 5000, true))
    await settleAs(retryOf('AADSTS50000', 5000, true))
    await settleAs(retryOf('token_network', 5000, true))
    // The row's own columns say what held it back last and when it is due (database time).
    expect(await rowOf(t, id)).toMatchObject({
      status: 'pending',
      attempts: 0,
      last_error_code: 'token_network',
    })
    // Something else in between (a Graph throttle, a release): the next token wait is recorded again.
    await settleAs(retryOf('ApplicationThrottled', 0, true))
    await settleAs(retryOf('token_http_503', 5000, true))
    await settleAs({ kind: 'released' })
    await settleAs(retryOf('token_http_503', 5000, true))
    await settleAs(retryOf('token_http_503', 5000, true))
    const history = await attemptsOf(t, id, 'attempt, outcome, error_code, finished_at')
    expect(history.map(({ finished_at, ...h }) => h)).toEqual([
      { attempt: 1, outcome: 'throttled', error_code: 'AADSTS50000' },
      { attempt: 1, outcome: 'throttled', error_code: 'ApplicationThrottled' },
      { attempt: 1, outcome: 'throttled', error_code: 'token_http_503' },
      { attempt: 1, outcome: 'released', error_code: 'token_http_503' },
      { attempt: 1, outcome: 'throttled', error_code: 'token_http_503' },
    ])
    // The run's entry is its first wait: the throttle deadline still counts from there.
    expect(history[0].finished_at).toEqual(first[0].finished_at)
  })

  test('a GRAPH_CERTIFICATE outside its dates is a wait for a token too: a run of them, Entra’s among them, recorded once', async () => {
    const id = await enqueue(t)
    const settleAs = async (s: Settlement) => {
      const [lease] = await claim(1)
      await settleOne(id, lease!.token, s)
      await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
    }
    // Refused before Entra is asked, once a minute for as long as nobody uploads a new one.
    await settleAs(retryOf('certificate_expired', 60_000, true))
    await settleAs(retryOf('certificate_expired', 60_000, true))
    await settleAs(retryOf('AADSTS700027', 60_000, true))
    await settleAs(retryOf('certificate_not_yet_valid', 60_000, true))
    expect(await attemptsOf(t, id, 'attempt, outcome, error_code')).toEqual([
      { attempt: 1, outcome: 'throttled', error_code: 'certificate_expired' },
    ])
    expect(await rowOf(t, id)).toMatchObject({
      status: 'pending',
      attempts: 0,
      last_error_code: 'certificate_not_yet_valid',
    })
  })

  test('the throttle deadline counts from the first of a run of token waits recorded once', async () => {
    const id = await enqueue(t)
    const tokenWait = async () => {
      const [lease] = await claim(1)
      const [row] = await settleOne(id, lease!.token, retryOf('token_timeout', 5000, true))
      await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
      return row
    }
    expect(await tokenWait()).toMatchObject({ status: 'pending', outcome: 'throttled' })
    expect(await tokenWait()).toMatchObject({ status: 'pending', outcome: 'throttled' })
    await t.pool.query(
      `update mailer.email_attempts set finished_at = now() - interval '25 hours' where outbox_id = $1`,
      [id],
    )
    expect(await tokenWait()).toMatchObject({ status: 'failed', code: 'throttled' })
  })

  test('counts from the first throttle of the current run, not from creation', async () => {
    const id = await enqueue(t)
    // Enqueued two days ago (scheduled ahead, or an old row retried): a first throttle only waits.
    await t.pool.query(
      `update mailer.email_outbox set created_at = now() - interval '2 days' where id = $1`,
      [id],
    )
    expect(await throttleAgain(id)).toMatchObject({ status: 'pending', outcome: 'throttled' })
    expect(await throttleAgain(id)).toMatchObject({ status: 'pending', outcome: 'throttled' })
    // The run began more than THROTTLE_DEADLINE_SECONDS ago: the next throttle ends it.
    await t.pool.query(
      `update mailer.email_attempts set finished_at = now() - interval '25 hours'
        where id = (select min(id) from mailer.email_attempts where outbox_id = $1)`,
      [id],
    )
    expect(await throttleAgain(id)).toMatchObject({ status: 'failed', code: 'throttled' })
    // Retried through the API: a new run, which a first throttle does not end.
    expect(await requeueOutboxRow(t.db, id, null)).not.toBeNull()
    expect(await throttleAgain(id)).toMatchObject({ status: 'pending', outcome: 'throttled' })
  })

  test('a cancel through the API and a retry start a new run too', async () => {
    const id = await enqueue(t)
    expect(await throttleAgain(id)).toMatchObject({ outcome: 'throttled' })
    await t.pool.query(
      `update mailer.email_attempts set finished_at = now() - interval '25 hours' where outbox_id = $1`,
      [id],
    )
    // Pending (waiting out the throttle) when cancelled: the cancel is recorded in its history.
    expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'cancelled' })
    const history = await attemptsOf(t, id, 'outcome')
    expect(history.map((r) => r.outcome)).toEqual(['throttled', 'cancelled'])
    expect(await requeueOutboxRow(t.db, id, null)).not.toBeNull()
    expect(await throttleAgain(id)).toMatchObject({ status: 'pending', outcome: 'throttled' })
  })

  test('an attempt counted in between starts a new run', async () => {
    const id = await enqueue(t)
    expect(await throttleAgain(id)).toMatchObject({ outcome: 'throttled' })
    await t.pool.query(
      `update mailer.email_attempts set finished_at = now() - interval '25 hours' where outbox_id = $1`,
      [id],
    )
    const [lease] = await claim(1)
    expect(await settleOne(id, lease!.token, retryOf('http_500', 0))).toMatchObject([
      { status: 'pending', outcome: 'retry' },
    ])
    expect(await throttleAgain(id)).toMatchObject({ status: 'pending', outcome: 'throttled' })
  })
})

describe('a send that may have reached the provider, on a failed row retried through the API', () => {
  const requeued = async (id: string) => {
    expect(await requeueOutboxRow(t.db, id, null)).not.toBeNull()
    const [lease] = await claim(1)
    expect(lease?.id).toBe(id)
    return lease!
  }
  // A send that timed out, settled by a worker with lookups off (no lookUpFirst).
  const timedOut: Settlement = {
    kind: 'retry',
    code: 'timeout',
    message: 'timeout',
    delayMs: 0,
    throttled: false,
    ambiguous: true,
  }

  test('out of attempts after a timeout: the retry resolves the ambiguity before sending', async () => {
    const id = await enqueue(t, undefined, { maxAttempts: 1 })
    const [lease] = await claim(1)
    expect(await settleOne(id, lease!.token, timedOut)).toMatchObject([{ status: 'failed' }])
    expect((await rowOf(t, id)).send_started_at).not.toBeNull()
    expect((await requeued(id)).ambiguous).toBe(true)
  })

  test('out of attempts after a timeout, lookups off: its error says that send may have delivered it, as a lookup that could not tell says', async () => {
    const id = await enqueue(t, undefined, { maxAttempts: 1 })
    const [lease] = await claim(1)
    await settleOne(id, lease!.token, timedOut)
    const expected = 'attempts exhausted; last error: timeout (that send may have delivered it)'
    const row = await rowOf(t, id)
    expect({ status: row.status, last_error: row.last_error }).toEqual({
      status: 'failed',
      last_error: expected,
    })
    expect(await attemptsOf(t, id, 'outcome, error')).toEqual([
      { outcome: 'failed', error: expected },
    ])
  })

  test('failed by the reclaim mid-send: likewise', async () => {
    const id = await enqueue(t, undefined, { maxAttempts: 1 })
    const [lease] = await claim(1)
    await startSends(t.db, [lease!])
    await expireLease(id)
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 3 })).rows).toMatchObject([
      { id, status: 'failed', ambiguous: true },
    ])
    expect((await requeued(id)).ambiguous).toBe(true)
  })

  test('held for review (ambiguous_send): retrying it is the decision to send', async () => {
    const id = await enqueue(t)
    const [lease] = await claim(1)
    await settleOne(id, lease!.token, {
      kind: 'failed',
      code: 'ambiguous_send',
      message: 'held for review',
    })
    expect((await requeued(id)).ambiguous).toBe(false)
  })
})

describe('expiry after an interrupted send', () => {
  test('says the message may have been delivered, rather than that it was not sent', async () => {
    const id = await enqueue(t)
    const [first] = await claim(1)
    await startSends(t.db, [first!])
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    const [again] = await claim(1)
    expect(again?.ambiguous).toBe(true)
    await settleOne(id, again!.token, { kind: 'expired' })
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      last_error_code: 'expired',
      last_error: expect.stringContaining('may have delivered it'),
    })
  })

  test('a send that failed for sure, whose retry would come after expiresAt, was not delivered', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 30_000).toISOString(),
    })
    const [lease] = await claim(1)
    await startSends(t.db, [lease!])
    // Graph answered 500: this send did not go out, and no earlier one was interrupted.
    expect(await settleOne(id, lease!.token, retryOf('http_500', 60_000))).toMatchObject([
      { status: 'failed', outcome: 'expired' },
    ])
    expect(await rowOf(t, id)).toMatchObject({
      last_error_code: 'expired',
      last_error: 'not sent before expiresAt',
    })
  })

  test('likewise when expiresAt passes after the claim, at the last check before the new send', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    })
    const [first] = await claim(1)
    await startSends(t.db, [first!])
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    const [again] = await claim(1)
    expect(again).toMatchObject({ ambiguous: true, expired: false })
    // Resent (policy resend, no lookup) after waiting for its permit, past expiresAt meanwhile.
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds' where id = $1`,
      [id],
    )
    expect((await startSends(t.db, [again!])).expired.has(id)).toBe(true)
    // As the engine settles it: with the lease's own knowledge of the interrupted send.
    await settleLeases(
      t.db,
      [
        {
          id,
          token: again!.token,
          settlement: { kind: 'expired' },
          ambiguous: true,
          startedAt: null,
        },
      ],
      settleParams,
    )
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      last_error_code: 'expired',
      last_error: expect.stringContaining('may have delivered it'),
    })
  })

  test('likewise when the worker dies between that last check and the settlement', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    })
    const [first] = await claim(1)
    await startSends(t.db, [first!])
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    const [again] = await claim(1)
    expect(again).toMatchObject({ ambiguous: true, expired: false })
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds' where id = $1`,
      [id],
    )
    expect((await startSends(t.db, [again!])).expired.has(id)).toBe(true)
    // The worker stops before settling it: its lease ends, a reclaim takes the row, a claim finds it expired.
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    const [third] = await claim(1)
    expect(third).toMatchObject({ id, expired: true, ambiguous: true })
    await settleLeases(
      t.db,
      [
        {
          id,
          token: third!.token,
          settlement: { kind: 'expired' },
          ambiguous: third!.ambiguous,
          startedAt: null,
        },
      ],
      settleParams,
    )
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      last_error_code: 'expired',
      last_error: expect.stringContaining('may have delivered it'),
    })
  })
})

describe('a claim past the expiresAt that only looks an interrupted send up, its worker stopped', () => {
  /**
   * A row whose attempt 1's send was interrupted (its worker stopped: reclaimed, its mark kept),
   * its expiresAt then passed while it waited pending, claimed past it (lease.ts lookupOnly) by a
   * worker that stops too: its lease ends unsettled.
   */
  async function lookupStopped(maxAttempts: number) {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      maxAttempts,
    })
    const [first] = await claim(1)
    await startSends(t.db, [first!])
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds' where id = $1`,
      [id],
    )
    const [lookup] = await claim(1)
    expect(lookup).toMatchObject({ id, expired: true, ambiguous: true })
    expect(lookupOnly(lookup!)).toBe(true)
    await expireLease(id)
    return id
  }
  const STOPPED_DURING_SEND = { attempt: 1, outcome: 'lease_expired', error_code: 'lease_expired' }

  test('each claim notes on the row whether it only looks up (lease_lookup_only), as lookupOnly judges its lease', async () => {
    // A row whose attempt 1's send was interrupted, then as `shape` leaves it (pending, due).
    const marked = async (shape: string, maxAttempts = 3) => {
      const id = await enqueue(t, undefined, {
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        maxAttempts,
      })
      await t.pool.query(
        `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '1 minute',
                send_at = now() - interval '2 seconds', ${shape} where id = $1`,
        [id],
      )
      return id
    }
    const rows = {
      clean: await enqueue(t),
      resend: await marked('priority = 0'),
      pastExpiry: await marked(`expires_at = now() - interval '1 second'`),
      cancelAsked: await marked('cancel_requested_at = now()'),
      pastAttempts: await marked('priority = 0', 1),
    }
    const noted = async (ids: string[]) =>
      (
        await t.pool.query<{ id: string; lease_lookup_only: boolean | null }>(
          'select id::text, lease_lookup_only from mailer.email_outbox where id = any($1::bigint[]) order by id',
          [ids],
        )
      ).rows
    // claim_batch: every row.
    const leases = (await claim(10)).sort((a, b) => Number(a.id) - Number(b.id))
    expect(leases.map((l) => [l.id, lookupOnly(l)])).toEqual([
      [rows.clean, false],
      [rows.resend, false],
      [rows.pastExpiry, true],
      [rows.cancelAsked, true],
      [rows.pastAttempts, true],
    ])
    expect(await noted(leases.map((l) => l.id))).toEqual(
      leases.map((l) => ({ id: l.id, lease_lookup_only: lookupOnly(l) || null })),
    )
    // claim_notified and claim_past_paused (MAIL_FROM's probe), each restating the note: every
    // kind alone, so that one a later migration restates without a clause is told apart.
    const kinds: [string, () => Promise<string>, boolean][] = [
      ['clean', () => enqueue(t), false],
      ['resend', () => marked('priority = 0'), false],
      ['pastExpiry', () => marked(`expires_at = now() - interval '1 second'`), true],
      ['cancelAsked', () => marked('cancel_requested_at = now()'), true],
      ['pastAttempts', () => marked('priority = 0', 1), true],
    ]
    const paths: [string, (id: string) => Partial<ClaimParams>][] = [
      ['claim_notified', (id) => ({ notifiedId: id })],
      ['claim_past_paused', () => ({ pausedSender: { key: 'sender@example.com', holdMs: 0 } })],
    ]
    // One pending row at a time: the rows claimed before are sending, in no claim's way.
    for (const [path, how] of paths) {
      for (const [kind, make, only] of kinds) {
        const id = await make()
        const { leases } = await claimBatch(t.db, {
          ...{ limit: 1, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 },
          ...how(id),
        })
        expect([path, kind, leases.map((l) => [l.id, lookupOnly(l)])]).toEqual([
          path,
          kind,
          [[id, only]],
        ])
        expect([path, kind, await noted([id])]).toEqual([
          path,
          kind,
          [{ id, lease_lookup_only: only || null }],
        ])
      }
    }
  })

  test('lookups on: the reclaim gives its claim back and numbers its entry as the send it looks up; the row waits to be looked up again', async () => {
    const id = await lookupStopped(3)
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })).rows).toEqual([
      { id, status: 'pending', ambiguous: true },
    ])
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending', attempts: 1 })
    expect(await attemptsOf(t, id, 'attempt, outcome, error_code')).toEqual([
      STOPPED_DURING_SEND,
      STOPPED_DURING_SEND,
    ])
    // Its count no longer ends a crash loop: the third stop in a row does, expired naming the send.
    const [again] = await claim(1)
    expect(lookupOnly(again!)).toBe(true)
    await expireLease(id)
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })).rows).toEqual([
      { id, status: 'failed', ambiguous: true, expired: true },
    ])
    const ended = await rowOf(t, id)
    expect(ended).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error_code: 'expired',
      last_error:
        'expiresAt passed; an interrupted send may have delivered it (the worker looking it up stopped)',
    })
    expect(ended.send_started_at).not.toBeNull()
    expect((await attemptsOf(t, id, 'attempt, outcome, error_code')).at(-1)).toEqual({
      attempt: 1,
      outcome: 'expired',
      error_code: 'expired',
    })
  })

  test('past its max_attempts too: the third stop in a row ends it expired, as its settlement and the sweep would (its expiresAt first), not failed out of attempts', async () => {
    // Attempt 1, the last, sent and stopped (lookups on: left to be looked up), then its expiresAt passed.
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      maxAttempts: 1,
    })
    const [first] = await claim(1)
    await startSends(t.db, [first!])
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds' where id = $1`,
      [id],
    )
    // Two lookups whose workers stop: past both its expiresAt and its attempts.
    for (const status of ['pending', 'failed'] as const) {
      const [lookup] = await claim(1)
      expect(lookup).toMatchObject({ id, expired: true, ambiguous: true, pastAttempts: true })
      await expireLease(id)
      const { rows } = await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
      expect(rows.map((r) => r.status)).toEqual([status])
    }
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error_code: 'expired',
      last_error:
        'expiresAt passed; an interrupted send may have delivered it (the worker looking it up stopped)',
    })
    expect((await attemptsOf(t, id, 'attempt, outcome, error_code')).at(-1)).toEqual({
      attempt: 1,
      outcome: 'expired',
      error_code: 'expired',
    })
  })

  test('lookups off, on its last attempt: not failed out of attempts by the reclaim; the sweep ends it expired naming the send, numbered 1', async () => {
    const id = await lookupStopped(2)
    const first = await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    expect(first.rows).toEqual([{ id, status: 'pending', ambiguous: true }])
    const { swept } = await reclaimExpired(t.db, {
      defaultMaxAttempts: 3,
      sweep: { workerId: 'sweeper', limit: 500, lookups: false },
    })
    expect(swept.map((r) => [r.id, r.status, r.attempt])).toEqual([[id, 'failed', 1]])
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error_code: 'expired',
      last_error: 'expiresAt passed; an interrupted send may have delivered it',
    })
    expect(await attemptsOf(t, id, 'attempt, outcome, error_code')).toEqual([
      STOPPED_DURING_SEND,
      STOPPED_DURING_SEND,
      { attempt: 1, outcome: 'expired', error_code: 'expired' },
    ])
  })
})

describe('lease upkeep', () => {
  test('a reclaim says when the earliest lease in flight ends, and beats the registry', async () => {
    const worker = { id: 'w9', host: 'h', pid: 9, version: 't' }
    const idle = await reclaimExpired(t.db, { defaultMaxAttempts: 3, beat: worker })
    // The beat says what the entry holds: keyless, as the worker sent it.
    expect(idle).toEqual({
      rows: [],
      failed: [],
      nextExpiryMs: null,
      swept: [],
      beat: { sent: null, entry: null },
    })
    const registered = await t.pool.query(`select id from mailer.workers where id = 'w9'`)
    expect(registered.rowCount).toBe(1)

    await enqueue(t)
    await enqueue(t)
    await claim(1, 'w1', 40)
    await claim(1, 'w2', 20)
    const ended = await enqueue(t)
    await claim(1, 'w3', 30)
    await expireLease(ended)
    // What is left of w2's lease (the earliest of those still running, 20 s) in database time,
    // just before and just after the reclaim: its answer lies between, however slow the test.
    const w2Left = async () =>
      (
        await t.pool.query<{ ms: number }>(
          `select (extract(epoch from lease_expires_at - now()) * 1000)::float8 as ms
             from mailer.email_outbox where lease_owner = 'w2'`,
        )
      ).rows[0]!.ms
    const before = await w2Left()
    const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    const after = await w2Left()
    expect(r.rows.map((x) => x.id)).toEqual([ended])
    expect(after).toBeGreaterThan(0)
    expect(r.nextExpiryMs).toBeGreaterThanOrEqual(after)
    expect(r.nextExpiryMs).toBeLessThanOrEqual(before)
  })

  test('a dead worker’s rows are reclaimed when their lease ends, not a half lease later', async () => {
    const id = await enqueue(t)
    // Claimed by a worker that then died, with a lease far shorter than this worker's.
    await claim(1, 'dead', 1)
    let woken: () => void = () => {}
    const wake = new Promise<void>((resolve) => {
      woken = resolve
    })
    const upkeep = createLeaseUpkeep({
      dbName: 'test',
      db: t.db,
      worker: { id: 'w1', host: 'h', pid: 1, version: 't' },
      // Reclaims every half lease would first come 30 s after the start.
      config: { heartbeatSeconds: 20, leaseSeconds: 60, maxAttempts: 3 },
      clock: systemClock,
      log: silentLogger,
      held: new Map(),
      settling: () => false,
      wake: () => woken(),
    })
    await upkeep.first()
    upkeep.startTimers()
    try {
      const bound = Bun.sleep(20_000).then(() => 'not reclaimed within 20 s')
      expect(await Promise.race([wake.then(() => 'reclaimed'), bound])).toBe('reclaimed')
    } finally {
      await upkeep.stopTimers()
    }
    expect((await rowOf(t, id)).status).toBe('pending')
  })

  test('a drainer’s first timed reclaim comes when the lease its start-up reclaim saw ends, not a lease length after the start', async () => {
    const id = await enqueue(t)
    // Claimed by a worker that then died; its lease outlasts the drainer's start-up reclaim.
    await claim(1, 'dead', 5)
    // The timers' reclaim would first come 120 s after the start.
    const engine = createTestEngine(t, { config: { leaseSeconds: 120, heartbeatSeconds: 40 } })
    await engine.start()
    try {
      await engine.events.waitFor((e) => e.type === 'reclaimed', 20_000)
      await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
    } finally {
      await engine.stop()
    }
  })

  test('a stop waits for a reclaim in flight: none of its statements outlives the stop', async () => {
    // A drainer's stop deregisters the worker and its caller ends the pool or, in a test, empties
    // the tables next: a reclaim still running then re-registers the stopped worker, or deadlocks
    // with the TRUNCATE (40P01, seen under load in expiry-sweep.test.ts).
    const id = await enqueue(t)
    await claim(1, 'dead', 1)
    await expireLease(id)
    const events: EngineEvent[] = []
    const upkeep = createLeaseUpkeep({
      dbName: 'test',
      db: t.db,
      worker: { id: 'w1', host: 'h', pid: 1, version: 't' },
      // Without first(), the timers' first reclaim comes a lease length after their start.
      config: { heartbeatSeconds: 20, leaseSeconds: 1, maxAttempts: 3 },
      clock: systemClock,
      log: silentLogger,
      onEvent: (e) => events.push(e),
      held: new Map(),
      settling: () => false,
      wake: () => {},
    })
    // The reclaim's history insert waits for this lock: the reclaim is in flight while it is held.
    const locker = await t.pool.connect()
    try {
      await locker.query('begin')
      await locker.query('lock table mailer.email_attempts in share mode')
      upkeep.startTimers()
      await untilLockWaits(t.pool)
      const stopped = upkeep.stopTimers()
      await locker.query('commit')
      await stopped
      expect(events.filter((e) => e.type === 'reclaimed')).toEqual([
        { type: 'reclaimed', db: 'test', count: 1 },
      ])
    } finally {
      locker.release()
    }
    expect((await rowOf(t, id)).status).toBe('pending')
  })

  test('a send whose last check outlasts the lease’s margin is not sent: the margin holds from the send, not from before the check', async () => {
    // A file/discard row with an expiry gets its last check in its slot. The deadline's margin
    // (a tenth of the lease here) is there so the send ends under the lease while heartbeats
    // fail; a slow last check (the database struggling, a statement waiting its turn) must not
    // eat into it unseen.
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    })
    const leases = await claimAsW1(t.db)
    expect(leases[0]!.started).toBe(false)
    let now = 1_000_000
    const clock: Clock = { now: () => now, sleep: systemClock.sleep }
    const deadlines = createLeaseDeadlines(clock, 30_000)
    deadlines.confirm(leases, now)
    const sender = createFakeSender()
    const done: string[] = []
    await deliverBatch(
      deliveryDeps(t.db, {
        sender,
        settle: testSettlements(t.db, { clock }),
        // The check answers 28 s later by this process's clock: 2 s of the lease left.
        start: async (l) => {
          const r = await startSends(t.db, l)
          now += 28_000
          return r
        },
        clock,
        deadlines,
        done: (l) => done.push(l.id),
      }),
      leases,
    )
    expect(sender.calls.length).toBe(0)
    expect(done).toEqual([id])
    // Handed back uncounted, and without the mark of a send that never began.
    expect(await rowOf(t, id)).toMatchObject({
      status: 'pending',
      attempts: 0,
      send_started_at: null,
    })
  })

  test('a lease a heartbeat finds lost is reported once, however long it stays held', async () => {
    const id = await enqueue(t)
    const [lease] = await claim(1)
    // Taken from this worker: reclaimed after an expiry and claimed by another.
    await expireLease(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
    await claim(1, 'w2')
    const events: EngineEvent[] = []
    const deadlines = createLeaseDeadlines(systemClock, 30_000)
    deadlines.confirm([lease!], monotonicNow(systemClock))
    const upkeep = createLeaseUpkeep({
      dbName: 'test',
      db: t.db,
      worker: { id: 'w1', host: 'h', pid: 1, version: 't' },
      config: { heartbeatSeconds: 10, leaseSeconds: 30, maxAttempts: 3 },
      clock: systemClock,
      log: silentLogger,
      onEvent: (e) => events.push(e),
      held: new Map([[id, lease!]]),
      settling: () => false,
      deadlines,
      wake: () => {},
    })
    await upkeep.first()
    await upkeep.first()
    expect(events.filter((e) => e.type === 'lease_lost')).toEqual([
      { type: 'lease_lost', db: 'test', id, during: 'heartbeat' },
    ])
    expect(deadlines.holds(lease!)).toBe(false)
  })

  /**
   * A drainer's pieces as claim-round.ts wires them, a heartbeat between a settlement's statement
   * and the handling of its answer, which `hold` keeps back; `taken` runs before the settlement.
   */
  async function heartbeatAmidSettlement(taken: (id: string) => Promise<unknown> = async () => {}) {
    const id = await enqueue(t)
    const lease = (await claimAsW1(t.db))[0]!
    const leases = createHeldLeases({ gateOpen: true, concurrency: 1 })
    leases.held.set(id, lease)
    leases.unsent.add(lease)
    const deadlines = createLeaseDeadlines(systemClock, 30_000)
    deadlines.confirm([lease], monotonicNow(systemClock))
    const events: EngineEvent[] = []
    const warnings: string[] = []
    const log = createLogger('warn', (line) => warnings.push(JSON.parse(line).msg))
    const config = { leaseSeconds: 30, maxAttempts: 3, throttleDeadlineSeconds: 86400 }
    const settlements = createSettlements({
      db: t.db,
      workerId: 'w1',
      config,
      clock: systemClock,
      log,
    })
    // Bounded and named: what they wait for is a statement or a heartbeat's few.
    const latches = boundedLatches(20_000)
    const written = latches.make('the settlement’s statement answered')
    const hold = latches.make('the settlement’s answer let go after the heartbeat')
    const settle: SettleQueue = {
      push: async (item) => {
        await taken(id)
        const row = await settlements.push(item)
        written.resolve()
        await hold.wait()
        return row
      },
      idle: () => settlements.idle(),
      giveUpBy: settlements.giveUpBy,
    }
    const upkeep = createLeaseUpkeep({
      dbName: 'test',
      db: t.db,
      worker: { id: 'w1', host: 'h', pid: 1, version: 't' },
      config: { heartbeatSeconds: 10, ...config },
      clock: systemClock,
      log,
      onEvent: (e) => events.push(e),
      held: leases.held,
      settling: leases.settling,
      deadlines,
      wake: () => {},
    })
    const delivery = deliverBatch(
      deliveryDeps(t.db, {
        sender: createFakeSender(),
        settle,
        start: (l) => startSends(t.db, l),
        log,
        onEvent: (e) => events.push(e),
        deadlines,
        handedOver: (l) => leases.unsent.delete(l),
        done: (l) => leases.release(l),
      }),
      [lease],
    )
    await written.wait()
    const status = (await rowOf(t, id)).status
    // The heartbeat no longer finds the row 'sending', and answers first.
    await upkeep.first()
    hold.resolve()
    await delivery
    expect(leases.held.size).toBe(0)
    return { id, status, events, warnings }
  }

  test('a row its own worker settles while a heartbeat runs is not counted as a lost lease', async () => {
    const { id, status, events, warnings } = await heartbeatAmidSettlement()
    expect(status).toBe('sent')
    expect(events.filter((e) => e.type === 'lease_lost')).toEqual([])
    expect(events).toEqual([expect.objectContaining({ type: 'settled', id, outcome: 'sent' })])
    expect(warnings).toEqual([])
  })

  test('a lease lost while its outcome waits for the settlement is counted once, by the settlement', async () => {
    // Reclaimed after an expiry and claimed by another worker before the settlement ran.
    const { id, status, events } = await heartbeatAmidSettlement(async (row) => {
      await expireLease(row)
      await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
      await claim(1, 'w2')
    })
    expect(status).toBe('sending')
    expect(events.filter((e) => e.type === 'lease_lost')).toEqual([
      { type: 'lease_lost', db: 'test', id, during: 'settle' },
    ])
  })
})

describe('the reclaim’s lease comparison', () => {
  // In one transaction now() is one instant, so a lease can end a millisecond either side of it
  // without a race against the wall clock.
  test('takes a lease that ended a millisecond ago, never one that ends a millisecond from now', async () => {
    const live = await enqueue(t)
    const ended = await enqueue(t)
    await claim(2)
    const reclaimed = await t.db.transaction().execute(async (trx) => {
      await sql`update mailer.email_outbox
                   set lease_expires_at = now() + case when id = ${live}::bigint
                                                       then interval '1 millisecond'
                                                       else interval '-1 millisecond' end
                 where id in (${live}::bigint, ${ended}::bigint)`.execute(trx)
      return (await reclaimExpired(trx, { defaultMaxAttempts: 3 })).rows
    })
    expect(reclaimed).toEqual([{ id: ended, status: 'pending', ambiguous: false }])
    expect((await rowOf(t, live)).status).toBe('sending')
  })
})

describe('the attempt history of a settlement', () => {
  test('names the worker that settled it, the send’s start, the HTTP status and the request id', async () => {
    const id = await enqueue(t)
    const [l] = await claim(1, 'w-claim')
    const startedAt = new Date(Date.now() - 1500)
    const settled = await settleLeases(
      t.db,
      [
        {
          id,
          token: l!.token,
          settlement: retryOf('http_503', 0),
          startedAt,
          httpStatus: 503,
          requestId: 'req-503',
        },
      ],
      { ...settleParams, workerId: 'w-settle' },
    )
    expect(settled).toMatchObject([{ id, outcome: 'retry' }])
    const [entry] = await attemptsOf(
      t,
      id,
      'attempt, worker_id, outcome, http_status, request_id, error_code, started_at',
    )
    expect(entry).toEqual({
      attempt: 1,
      worker_id: 'w-settle',
      outcome: 'retry',
      http_status: 503,
      request_id: 'req-503',
      error_code: 'http_503',
      started_at: startedAt,
    })
  })
})
