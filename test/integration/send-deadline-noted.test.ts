// The last check notes a started send's deadline (its start plus the process's request timeout) with the start, and a settlement keeps it only with the start.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const claim = async (limit: number) =>
  (await claimBatch(t.db, { limit, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }))
    .leases

/** Each row's deadline past its start, in seconds (null: none noted), in id order. */
const deadlines = async () =>
  (
    await t.pool.query<{ id: string; marked: boolean; noted: boolean; after: number | null }>(
      `select id::text, send_started_at is not null as marked, send_deadline_at is not null as noted,
              extract(epoch from send_deadline_at - send_started_at)::float8 as after
         from mailer.email_outbox order by id`,
    )
  ).rows

test('a started row notes its deadline, its start plus the timeout, the quick way and past a row another transaction holds; one not started none', async () => {
  const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
  const [quick, slow, held] = ids as [string, string, string]
  const leases = await claim(3)
  const lease = (id: string) => leases.filter((l) => l.id === id)
  expect([...(await startSends(t.db, lease(quick), 7.5)).started]).toEqual([quick])
  // The held row's lock outlasts the check's 50 ms: it goes the slow way, row by row.
  const app = await holdRowLocked(t.pool, held)
  try {
    const r = await startSends(t.db, [...lease(slow), ...lease(held)], 12)
    expect([[...r.started], [...r.busy]]).toEqual([[slow], [held]])
  } finally {
    await app.end('rollback')
  }
  expect(await deadlines()).toEqual([
    { id: quick, marked: true, noted: true, after: 7.5 },
    { id: slow, marked: true, noted: true, after: 12 },
    { id: held, marked: false, noted: false, after: null },
  ])
})

test('a start without a timeout (no Graph) notes none', async () => {
  const id = await enqueue(t)
  expect([...(await startSends(t.db, await claim(1))).started]).toEqual([id])
  expect(await deadlines()).toEqual([{ id, marked: true, noted: false, after: null }])
})

test('a settlement clears the deadline with the start, and keeps it where it keeps the start (a send that may have reached the provider)', async () => {
  const ids = [await enqueue(t), await enqueue(t)]
  const [answered, interrupted] = ids as [string, string]
  const leases = await claim(2)
  await startSends(t.db, leases, 30)
  const retry = (ambiguous: boolean): Settlement => ({
    kind: 'retry',
    code: ambiguous ? 'timeout' : 'graph_500',
    message: 'x',
    delayMs: 1000,
    throttled: false,
    ambiguous,
  })
  const settled = await settleLeases(
    t.db,
    leases.map((l) => ({
      id: l.id,
      token: l.token,
      settlement: retry(l.id === interrupted),
      startedAt: null,
    })),
    { workerId: 'w', defaultMaxAttempts: 3, throttleDeadlineSeconds: 3600 },
  )
  expect(settled.map((r) => r.outcome).sort()).toEqual(['retry', 'retry'])
  expect(await deadlines()).toEqual([
    { id: answered, marked: false, noted: false, after: null },
    { id: interrupted, marked: true, noted: true, after: 30 },
  ])
})
