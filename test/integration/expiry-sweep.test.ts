// Rows nobody claims keep their expiresAt: the worker's reclaim fails them `expired`, fenced against claims.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { createLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import {
  LOOKUP_GRACE_SECONDS,
  PAST_EXPIRY_LOOKUP_LIMIT_SECONDS,
} from '../../src/outbox/lookup-grace.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import { BUSY_OUTCOME } from '../../src/outbox/settle-item.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

// A short lease: an idle worker reclaims (and sweeps) once per lease length.
const LEASE_SECONDS = 2
const quickLeases = { leaseSeconds: LEASE_SECONDS, heartbeatSeconds: 1 }
/** The promise: failed within a lease length of its expiresAt; twice that, and a margin, to wait. */
const WITHIN_MS = 3 * LEASE_SECONDS * 1000

const inOneHour = () => ({ expiresAt: new Date(Date.now() + 3600_000).toISOString() })
/** Its expiresAt passes now (database time), as if an hour had gone by. */
const expireNow = (ids: string[]) =>
  t.pool.query(
    `update mailer.email_outbox set expires_at = now() - interval '1 second',
            send_at = least(send_at, now() - interval '2 seconds') where id = any($1::bigint[])`,
    [ids],
  )
const historyOf = async (id: string) =>
  (
    await t.pool.query(
      `select attempt, worker_id, outcome, error_code, error, kind from mailer.email_attempts
        where outbox_id = $1 order by id`,
      [id],
    )
  ).rows
const sweep = { workerId: 'w1', limit: 500 }

describe('a pending row whose expiresAt passes while no worker claims it', () => {
  test('held off by a refused credential (nothing claimed), it is failed `expired` within a lease length, as a claim would fail it', async () => {
    const lines: Record<string, unknown>[] = []
    const e = createTestEngine(t, {
      config: quickLeases,
      // The credential stands refused for good: the worker claims nothing.
      deps: {
        sendBlockedForMs: () => 60_000,
        log: createLogger('warn', (line) => lines.push(JSON.parse(line))),
      },
    })
    engine = e
    await e.start()
    const id = await enqueue(t, undefined, inOneHour())
    const lasting = await enqueue(t, undefined, inOneHour())
    const plain = await enqueue(t)
    await expireNow([id])
    await e.events.waitFor(settledFor(id, 'expired'), WITHIN_MS)
    expect(e.events.events.filter((x) => x.type === 'claimed')).toEqual([])
    // The row and its history read as those of a row a claim found expired (test below).
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error_code: 'expired',
      last_error: 'not sent before expiresAt',
      lease_token: null,
      send_started_at: null,
    })
    expect(await historyOf(id)).toEqual([
      {
        attempt: 1,
        worker_id: 'test-worker',
        outcome: 'expired',
        error_code: 'expired',
        error: 'not sent before expiresAt',
        kind: 'attempt',
      },
    ])
    // Counted as a claim-time expiry is (outbox_sends_total{outcome="expired"}).
    expect(e.events.events.filter(settledFor(id))).toEqual([
      { type: 'settled', db: 'test', id, outcome: 'expired', code: 'expired' },
    ])
    // One line, ids only, as for a row failed after a claim.
    expect(lines.filter((l) => l.outboxId === id)).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: 'message failed',
        db: 'test',
        tenant: 'default',
        attempt: 1,
        outcome: 'expired',
        code: 'expired',
        claimed: false,
      }),
    ])
    expect(JSON.stringify(lines)).not.toContain('rcpt@example.com')
    // The others wait on.
    for (const other of [lasting, plain])
      expect(await rowOf(t, other)).toMatchObject({ status: 'pending', attempts: 0 })
  })

  test('a row a claim finds expired is recorded the same way (the shape the sweep copies)', async () => {
    const e = createTestEngine(t, { config: quickLeases })
    engine = e
    const id = await enqueue(t, undefined, inOneHour())
    await expireNow([id])
    await e.start()
    await e.events.waitFor(settledFor(id, 'expired'), WITHIN_MS)
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error_code: 'expired',
      last_error: 'not sent before expiresAt',
    })
    expect(await historyOf(id)).toEqual([
      {
        attempt: 1,
        worker_id: 'test-worker',
        outcome: 'expired',
        error_code: 'expired',
        error: 'not sent before expiresAt',
        kind: 'attempt',
      },
    ])
  })

  test('behind a backlog that does not move (its one send slot held), it is failed `expired` without waiting its turn', async () => {
    const sender = createFakeSender()
    sender.hold()
    const e = createTestEngine(t, {
      config: { ...quickLeases, concurrency: 1 },
      deps: { sender },
    })
    engine = e
    await e.start()
    const blocker = await enqueue(t)
    await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))
    // Claimed after the blocker's send ends (with file/discard: 50 rows per slot are claimed ahead).
    const backlog: string[] = []
    for (let i = 0; i < 150; i++) backlog.push(await enqueue(t))
    const expiring = await enqueue(t, undefined, inOneHour())
    const row = await rowOf(t, expiring)
    expect(row.status).toBe('pending')
    await expireNow([expiring])
    await e.events.waitFor(settledFor(expiring, 'expired'), WITHIN_MS)
    expect(sender.calls.map((m) => m.outboxId)).toEqual([blocker])
    sender.release()
    await e.events.waitFor(settledFor(backlog.at(-1)!, 'sent'))
    expect(sender.calls.map((m) => m.outboxId)).not.toContain(expiring)
  })

  test('rows that expired while no worker ran are failed by a starting worker before its first claim', async () => {
    const ids: string[] = []
    for (let i = 0; i < 3; i++) ids.push(await enqueue(t, undefined, inOneHour()))
    await expireNow(ids)
    // Held off from the start: only the start's reclaim can fail them.
    const e = createTestEngine(t, {
      config: quickLeases,
      deps: { sendBlockedForMs: () => 60_000 },
    })
    engine = e
    await e.start()
    for (const id of ids) await e.events.waitFor(settledFor(id, 'expired'), WITHIN_MS)
    expect(e.events.events.filter((x) => x.type === 'claimed')).toEqual([])
  })

  /**
   * A row whose attempt 1's send was interrupted (its mark kept), pending, its expiresAt passed:
   * committed so at once, so that a running worker's claim meets it only so.
   */
  const interruptedAndExpired = async () => {
    const c = await t.pool.connect()
    try {
      await c.query('begin')
      const { rows } = await c.query<{ id: string }>(
        `select mailer.enqueue_email($1::jsonb, $2::jsonb) as id`,
        [
          JSON.stringify({ to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' }),
          JSON.stringify(inOneHour()),
        ],
      )
      const id = rows[0]!.id
      await c.query(
        `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '2 minutes',
                expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds'
          where id = $1`,
        [id],
      )
      await c.query('commit')
      return id
    } finally {
      c.release()
    }
  }
  const INTERRUPTED_EXPIRED = {
    attempt: 1,
    outcome: 'expired',
    error_code: 'expired',
    error: 'expiresAt passed; an interrupted send may have delivered it',
    kind: 'unresolved',
  }

  test('one with an interrupted earlier send keeps its mark and says so, as at a claim, counting no attempt: it was not sent again', async () => {
    const id = await interruptedAndExpired()
    const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep })
    expect(r.swept).toEqual([
      { id, status: 'failed', tenant: 'default', attempt: 1, correlationId: null },
    ])
    const row = await rowOf(t, id)
    expect(row).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error_code: 'expired',
      last_error: INTERRUPTED_EXPIRED.error,
    })
    expect(row.send_started_at).not.toBeNull()
    expect(await historyOf(id)).toEqual([{ ...INTERRUPTED_EXPIRED, worker_id: 'w1' }])
  })

  test('one with an interrupted earlier send a claim finds expired (lookups off) is recorded the same way, counting no attempt', async () => {
    // The test engine's 30 s lease, not quickLeases: an idle worker sweeps once per lease length,
    // and a sweep 2 s after the start could meet the row before the claim its notification wakes
    // (seen in CI under load: no 'claimed' event). Started first: its first reclaim (and sweep) has
    // run, so the claim meets the row.
    const e = createTestEngine(t)
    engine = e
    await e.start()
    const id = await interruptedAndExpired()
    await e.events.waitFor(settledFor(id, 'expired'), WITHIN_MS)
    expect(e.events.events.some((x) => x.type === 'claimed')).toBe(true)
    const row = await rowOf(t, id)
    expect(row).toMatchObject({ status: 'failed', attempts: 1, last_error_code: 'expired' })
    expect(row.send_started_at).not.toBeNull()
    expect(await historyOf(id)).toEqual([{ ...INTERRUPTED_EXPIRED, worker_id: 'test-worker' }])
  })
})

describe('a pending row with a cancel recorded, past its expiresAt', () => {
  // A cancel accepted (202) while a worker held the row, which then went back pending: a reclaim
  // after an interrupted earlier send (its mark kept), a binary before round 33, a hand's update.
  const cancelRecorded = (ids: string[]) =>
    t.pool.query(
      'update mailer.email_outbox set cancel_requested_at = now() where id = any($1::bigint[])',
      [ids],
    )

  test('the sweep ends it cancelled, not expired: the user asked for the cancel', async () => {
    const id = await enqueue(t, undefined, inOneHour())
    const plain = await enqueue(t, undefined, inOneHour())
    await cancelRecorded([id])
    await expireNow([id, plain])
    const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep })
    expect(r.swept).toEqual([
      { id, status: 'cancelled', tenant: 'default', attempt: 1, correlationId: null },
      { id: plain, status: 'failed', tenant: 'default', attempt: 1, correlationId: null },
    ])
    expect(await rowOf(t, id)).toMatchObject({
      status: 'cancelled',
      attempts: 1,
      last_error_code: 'cancelled',
      last_error: 'cancelled before the send started',
    })
    expect(await historyOf(id)).toEqual([
      {
        attempt: 1,
        worker_id: 'w1',
        outcome: 'cancelled',
        error_code: 'cancelled',
        error: 'cancelled before the send started',
        kind: 'attempt',
      },
    ])
    expect(await rowOf(t, plain)).toMatchObject({ status: 'failed', last_error_code: 'expired' })
  })

  test("one that keeps an interrupted send's mark (its cancel recorded for a lookup), lookups off: cancelled, saying that send may have delivered it, the mark kept", async () => {
    const id = await enqueue(t, undefined, inOneHour())
    await t.pool.query(
      `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '2 minutes'
        where id = $1`,
      [id],
    )
    await cancelRecorded([id])
    await expireNow([id])
    const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep })
    expect(r.swept.map((s) => [s.id, s.status])).toEqual([[id, 'cancelled']])
    const row = await rowOf(t, id)
    expect({ ...row, marked: row.send_started_at !== null }).toMatchObject({
      status: 'cancelled',
      last_error_code: 'cancelled',
      last_error: 'cancelled; an interrupted send may have delivered it',
      marked: true,
      // As its claim would: the interrupted send not looked up is no attempt (lease.ts lookupOnly).
      attempts: 1,
    })
  })

  test("a worker's sweep counts it cancelled, as a settlement that finds the cancel does", async () => {
    const lines: Record<string, unknown>[] = []
    const e = createTestEngine(t, {
      config: quickLeases,
      deps: {
        sendBlockedForMs: () => 60_000,
        log: createLogger('debug', (line) => lines.push(JSON.parse(line))),
      },
    })
    engine = e
    await e.start()
    const id = await enqueue(t, undefined, inOneHour())
    await cancelRecorded([id])
    await expireNow([id])
    await e.events.waitFor(settledFor(id), WITHIN_MS)
    expect(e.events.events.filter(settledFor(id))).toEqual([
      { type: 'settled', db: 'test', id, outcome: 'cancelled', code: 'cancelled' },
    ])
    expect(lines.filter((l) => l.outboxId === id)).toEqual([
      expect.objectContaining({
        level: 'debug',
        msg: 'settled',
        outcome: 'cancelled',
        claimed: false,
      }),
    ])
  })
})

describe("with lookups on, a pending row keeping an interrupted send's mark past its expiresAt", () => {
  // Its lookup's wait is bounded at expiresAt + the lookup grace + PAST_EXPIRY_LOOKUP_LIMIT_SECONDS
  // (settle.ts); a row nobody claims (its mailbox paused on, no worker for it) ends there too.
  const BOUND_SECONDS = LOOKUP_GRACE_SECONDS + PAST_EXPIRY_LOOKUP_LIMIT_SECONDS
  /** Attempt 1's send interrupted, expired `pastSeconds` ago, due only in an hour (left unclaimed). */
  const waitingPastExpiry = async (pastSeconds: number) => {
    const id = await enqueue(t, undefined, inOneHour())
    await t.pool.query(
      `update mailer.email_outbox
          set attempts = 1, send_started_at = now() - make_interval(secs => $2 + 120),
              expires_at = now() - make_interval(secs => $2), send_at = now() + interval '1 hour',
              last_error_code = 'mailbox_paused', last_error = 'not sent: paused'
        where id = $1`,
      [id, pastSeconds],
    )
    return id
  }
  const lookups = { ...sweep, lookups: true }
  const ENDED = {
    status: 'failed',
    attempts: 1,
    last_error_code: 'expired',
    last_error: 'expiresAt passed; an interrupted send may have delivered it',
  }

  test('is swept past its bound, unclaimed, as a claim held back past it ends it (its mark kept, no attempt counted); within the bound it waits', async () => {
    const past = await waitingPastExpiry(BOUND_SECONDS + 5)
    const within = await waitingPastExpiry(BOUND_SECONDS - 60)
    const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true, sweep: lookups })
    expect(r.swept).toEqual([
      { id: past, status: 'failed', tenant: 'default', attempt: 1, correlationId: null },
    ])
    const row = await rowOf(t, past)
    expect({ ...row, marked: row.send_started_at !== null }).toMatchObject({
      ...ENDED,
      marked: true,
    })
    expect(await historyOf(past)).toEqual([
      {
        attempt: 1,
        worker_id: 'w1',
        outcome: 'expired',
        error_code: 'expired',
        error: ENDED.last_error,
        kind: 'unresolved',
      },
    ])
    expect(await rowOf(t, within)).toMatchObject({ status: 'pending', attempts: 1 })
  })

  test('its cancel recorded, swept past its bound: cancelled saying that send may have delivered it, as with lookups off, the mark kept', async () => {
    const past = await waitingPastExpiry(BOUND_SECONDS + 5)
    const within = await waitingPastExpiry(BOUND_SECONDS - 60)
    await t.pool.query(
      'update mailer.email_outbox set cancel_requested_at = now() where id = any($1::bigint[])',
      [[past, within]],
    )
    const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true, sweep: lookups })
    expect(r.swept.map((x) => [x.id, x.status])).toEqual([[past, 'cancelled']])
    const row = await rowOf(t, past)
    expect({ ...row, marked: row.send_started_at !== null }).toMatchObject({
      status: 'cancelled',
      attempts: 1,
      last_error_code: 'cancelled',
      last_error: 'cancelled; an interrupted send may have delivered it',
      marked: true,
    })
    expect(await rowOf(t, within)).toMatchObject({ status: 'pending', attempts: 1 })
  })

  test("the bound is the sweeping worker's: its lookup grace plus PAST_EXPIRY_LOOKUP_LIMIT_SECONDS", async () => {
    const past = await waitingPastExpiry(PAST_EXPIRY_LOOKUP_LIMIT_SECONDS + 10)
    const within = await waitingPastExpiry(PAST_EXPIRY_LOOKUP_LIMIT_SECONDS)
    const r = await reclaimExpired(t.db, {
      defaultMaxAttempts: 3,
      lookups: true,
      sweep: { ...lookups, lookupPastExpirySeconds: PAST_EXPIRY_LOOKUP_LIMIT_SECONDS + 5 },
    })
    expect(r.swept.map((x) => x.id)).toEqual([past])
    expect(await rowOf(t, within)).toMatchObject({ status: 'pending' })
  })

  test('a worker (its claims held off) ends it within a lease length of its bound, which its own lookup grace sets', async () => {
    const e = createTestEngine(t, {
      config: quickLeases,
      deps: {
        sendBlockedForMs: () => 60_000,
        lookup: async () => 'found',
        lookupGraceSeconds: 1,
      },
    })
    engine = e
    // Past 1 s + the limit, within the default 30 s + the limit.
    const past = await waitingPastExpiry(PAST_EXPIRY_LOOKUP_LIMIT_SECONDS + 10)
    const within = await waitingPastExpiry(PAST_EXPIRY_LOOKUP_LIMIT_SECONDS - 10)
    await e.start()
    await e.events.waitFor(settledFor(past, 'expired'), WITHIN_MS)
    expect(await rowOf(t, past)).toMatchObject(ENDED)
    expect((await historyOf(past)).map((h) => [h.attempt, h.worker_id, h.outcome])).toEqual([
      [1, 'test-worker', 'expired'],
    ])
    expect(await rowOf(t, within)).toMatchObject({ status: 'pending', attempts: 1 })
  })
})

describe('the sweep is fenced against claims', () => {
  test('a claimed row past its expiresAt is its worker’s: never touched', async () => {
    const id = await enqueue(t, undefined, inOneHour())
    const [lease] = (
      await claimBatch(t.db, { limit: 1, workerId: 'w2', leaseSeconds: 30, defaultMaxAttempts: 3 })
    ).leases
    expect(lease?.id).toBe(id)
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second',
              send_at = now() - interval '2 seconds' where id = $1`,
      [id],
    )
    const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep })
    expect(r.swept).toEqual([])
    expect(await rowOf(t, id)).toMatchObject({ status: 'sending', lease_token: lease!.token })
    expect(await historyOf(id)).toEqual([])
  })

  test('a row a claim holds locked is skipped without waiting, and left to that claim once it commits', async () => {
    const id = await enqueue(t, undefined, inOneHour())
    const other = await enqueue(t, undefined, inOneHour())
    await expireNow([id, other])
    const claimer = await holdRowLocked(t.pool, id)
    try {
      // The sweep does not wait for the lock (a statement timeout would fail it if it did).
      const r = await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep })
      expect(r.swept.map((s) => s.id)).toEqual([other])
      await claimer.client.query(
        `update mailer.email_outbox set status = 'sending', attempts = attempts + 1, lease_owner = 'w2',
                lease_token = gen_random_uuid(), lease_expires_at = now() + interval '30 seconds'
          where id = $1`,
        [id],
      )
      await claimer.end('commit')
    } finally {
      await claimer.end('rollback')
    }
    const again = await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep })
    expect(again.swept).toEqual([])
    expect(await rowOf(t, id)).toMatchObject({ status: 'sending', lease_owner: 'w2' })
    expect(await historyOf(id)).toEqual([])
  })

  test('claims and sweeps racing over expiring rows: each row ends failed `expired` once, with one history entry', async () => {
    const ids: string[] = []
    for (let i = 0; i < 300; i++) ids.push(await enqueue(t, undefined, inOneHour()))
    await expireNow(ids)
    const pendingLeft = async () =>
      (await t.pool.query(`select 1 from mailer.email_outbox where status = 'pending' limit 1`))
        .rowCount! > 0
    const claimRound = async (worker: string) => {
      const { leases } = await claimBatch(t.db, {
        limit: 7,
        workerId: worker,
        leaseSeconds: 30,
        defaultMaxAttempts: 3,
      })
      expect(leases.every((l) => l.expired)).toBe(true)
      let unsettled = leases.map((l) => ({
        id: l.id,
        token: l.token,
        settlement: { kind: 'expired' as const },
        startedAt: null,
      }))
      // A sweep's FOR UPDATE keeps the lock on a row it found claimed meanwhile (its recheck
      // skips it, the lock stays to its commit), and a settlement skips a locked row as busy: asked
      // again, as the engine's settle queue asks, a bounded number of times.
      for (let tries = 0; unsettled.length > 0; tries++) {
        expect(tries).toBeLessThan(1_000)
        const settled = await settleLeases(t.db, unsettled, {
          workerId: worker,
          defaultMaxAttempts: 3,
          throttleDeadlineSeconds: 86400,
        })
        const busy = new Set(settled.filter((r) => r.outcome === BUSY_OUTCOME).map((r) => r.id))
        unsettled = unsettled.filter((i) => busy.has(i.id))
      }
    }
    const sweepRound = (worker: string) =>
      reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep: { workerId: worker, limit: 5 } })
    const racers: [(worker: string) => Promise<unknown>, string][] = [
      [claimRound, 'c1'],
      [claimRound, 'c2'],
      [sweepRound, 's1'],
      [sweepRound, 's2'],
    ]
    // Each takes its first turn alone, so that each takes part however a loaded machine schedules
    // the race (one whose connection came late found the others had failed every row).
    for (const [turn, worker] of racers) await turn(worker)
    // Then they race until no row is pending: one that found every row locked by the others has
    // not raced yet.
    await Promise.all(
      racers.map(async ([turn, worker]) => {
        while (await pendingLeft()) await turn(worker)
      }),
    )
    const rows = await t.pool.query(
      `select o.status, o.attempts, o.last_error_code, count(a.id)::int as entries,
              count(*) filter (where a.outcome = 'expired')::int as expired_entries
         from mailer.email_outbox o left join mailer.email_attempts a on a.outbox_id = o.id
        group by o.id order by o.id`,
    )
    expect(rows.rows).toHaveLength(ids.length)
    // Both ways of failing a row took part in the race.
    const by = await t.pool.query(
      'select worker_id, count(*)::int as n from mailer.email_attempts group by worker_id order by worker_id',
    )
    console.log(`[race] rows failed per worker: ${JSON.stringify(by.rows)}`)
    expect(by.rows.map((r) => r.worker_id)).toEqual(['c1', 'c2', 's1', 's2'])
    for (const r of rows.rows)
      expect(r).toEqual({
        status: 'failed',
        attempts: 1,
        last_error_code: 'expired',
        entries: 1,
        expired_entries: 1,
      })
  })

  test('a row whose expiresAt is the sweep’s own now(), or a moment before it, is swept', async () => {
    const atNow = await enqueue(t, undefined, inOneHour())
    const justBefore = await enqueue(t, undefined, inOneHour())
    // One transaction, so now() is one instant for the update and the sweep.
    const swept = await t.db.transaction().execute(async (trx) => {
      await sql`update mailer.email_outbox
                   set send_at = now() - interval '2 seconds',
                       expires_at = case when id = ${atNow} then now() else now() - interval '300 milliseconds' end
                 where id in (${atNow}, ${justBefore})`.execute(trx)
      return (await reclaimExpired(trx, { defaultMaxAttempts: 3, sweep })).swept.map((r) => r.id)
    })
    expect(swept).toEqual([atNow, justBefore])
  })

  test('in bounded batches, the earliest expiresAt first, each batch in id order; rows with a later expiresAt or none are left alone', async () => {
    const ids: string[] = []
    for (let i = 0; i < 12; i++) ids.push(await enqueue(t, undefined, inOneHour()))
    const later = await enqueue(t, undefined, inOneHour())
    const none = await enqueue(t)
    // Expired in the reverse order of their ids: the last enqueued first.
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() - interval '1 day',
              expires_at = now() - make_interval(secs => id) where id = any($1::bigint[])`,
      [ids],
    )
    const batch = () =>
      reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep: { ...sweep, limit: 5 } }).then((r) =>
        r.swept.map((s) => s.id),
      )
    expect(await batch()).toEqual(ids.slice(7))
    expect(await batch()).toEqual(ids.slice(2, 7))
    expect(await batch()).toEqual(ids.slice(0, 2))
    expect(await batch()).toEqual([])
    for (const id of [later, none])
      expect(await rowOf(t, id)).toMatchObject({ status: 'pending', attempts: 0 })
  })

  test('a worker fails a backlog of expired rows larger than one batch in consecutive reclaims', async () => {
    await t.pool.query(
      `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hi","text":"x"}'::jsonb,
              jsonb_build_object('expiresAt', now() + interval '1 hour'))
         from generate_series(1, 1200)`,
    )
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second',
              send_at = now() - interval '2 seconds'`,
    )
    const e = createTestEngine(t, { config: quickLeases, deps: { sendBlockedForMs: () => 60_000 } })
    engine = e
    await e.start()
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox where status = 'failed'`,
      )
      return r.rows[0].n === 1200 ? true : undefined
    }, WITHIN_MS)
    // Each row counted once: the events of a sweep follow its commit, so the last batch's may come
    // after its rows read failed; waited for (bounded), then counted exactly.
    const settled = () =>
      e.events.events.filter((x) => x.type === 'settled' && x.outcome === 'expired')
    await pollUntil(async () => (settled().length >= 1200 ? true : undefined), WITHIN_MS).catch(
      () => {},
    )
    expect(settled()).toHaveLength(1200)
  })
})
