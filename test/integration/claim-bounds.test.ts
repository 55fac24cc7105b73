// The claim's bounds at their edges: a row due or expiring this very instant, a limit of nothing, the marks it reads and writes.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const params = { workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3, markStarted: true }

test('a row whose send_at is the claim’s own now() is due: claimed, not reported as the next due row', async () => {
  // now() is the transaction's start: a claim in the transaction that scheduled the row at now()
  // sees send_at equal to its own now(), the one instant a strict comparison leaves out.
  const id = await enqueue(t)
  const c = await t.pool.connect()
  try {
    await c.query('begin')
    await c.query('update mailer.email_outbox set send_at = now() where id = $1', [id])
    const { rows } = await c.query<{ claim: string }>(
      `select mailer.claim_batch(10, 'w1', gen_random_uuid(), 30, true, 3)::text as claim`,
    )
    await c.query('commit')
    const claim = JSON.parse(rows[0]!.claim) as { leases: unknown[][]; nextDueMs: number | null }
    expect(claim.leases.map((l) => l[0])).toEqual([id])
    expect(claim.nextDueMs).toBeNull()
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
  expect((await rowOf(t, id)).status).toBe('sending')
})

test('a limit of nothing takes nothing, not even the row a notification named', async () => {
  const id = await enqueue(t)
  const claim = await claimBatch(t.db, { ...params, limit: 0, notifiedId: id })
  expect(claim.leases).toEqual([])
  expect((await rowOf(t, id)).status).toBe('pending')
})

test('a row whose expiresAt passed a moment ago is claimed as expired (the claim’s now() included)', async () => {
  const justNow = await enqueue(t)
  const atNow = await enqueue(t)
  const c = await t.pool.connect()
  try {
    await c.query('begin')
    await c.query(
      `update mailer.email_outbox set expires_at = now() - interval '200 milliseconds', send_at = now() - interval '1 second' where id = $1`,
      [justNow],
    )
    await c.query(
      `update mailer.email_outbox set expires_at = now(), send_at = now() - interval '1 second' where id = $1`,
      [atNow],
    )
    const { rows } = await c.query<{ claim: string }>(
      `select mailer.claim_batch(10, 'w1', gen_random_uuid(), 30, true, 3)::text as claim`,
    )
    await c.query('commit')
    const claim = JSON.parse(rows[0]!.claim) as { leases: unknown[][] }
    // [id, …, expired (8), cancelRequested, ambiguous, started (11)]
    expect(claim.leases.map((l) => [l[0], l[8], l[11]])).toEqual([
      [justNow, true, false],
      [atNow, true, false],
    ])
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
})

test('an interrupted send at a less urgent priority is claimed ambiguous and unstarted, beside clean rows', async () => {
  // The claim gathers its rows priority by priority; each priority's interrupted rows must be named.
  const urgent = await enqueue(t, undefined, { priority: -1 })
  const urgentMarked = await enqueue(t, undefined, { priority: -1 })
  const lazyMarked = await enqueue(t, undefined, { priority: 5 })
  const lazy = await enqueue(t, undefined, { priority: 5 })
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now() - interval '1 minute', attempts = 1
      where id = any($1::bigint[])`,
    [[urgentMarked, lazyMarked]],
  )
  const { leases } = await claimBatch(t.db, { ...params, limit: 10 })
  expect(leases.map((l) => [l.id, l.ambiguous, l.started])).toEqual([
    [urgent, false, true],
    [urgentMarked, true, false],
    [lazyMarked, true, false],
    [lazy, false, true],
  ])
})

test('a row with a cancel recorded is claimed unstarted, so a reclaim after a crash cancels it rather than sending it', async () => {
  // A cancel accepted while a worker held the row, which then gave it back pending (or stopped).
  const id = await enqueue(t)
  await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
    id,
  ])
  const { leases } = await claimBatch(t.db, { ...params, limit: 10 })
  expect(leases.map((l) => [l.id, l.cancelRequested, l.started])).toEqual([[id, true, false]])
  expect((await rowOf(t, id)).send_started_at).toBeNull()
  // The worker is gone: its lease ends, and the reclaim ends the row as asked.
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  const { rows } = await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
  expect(rows).toEqual([{ id, status: 'cancelled', ambiguous: false }])
})
