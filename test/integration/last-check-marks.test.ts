// The last check marks a send started only on the row it lets go: not one it finds expired or cancelled, nor an ended lease, the quick way or past a locked row.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

/**
 * Claimed unmarked (as a Graph worker claims), then: one row left as it is, one whose expiresAt
 * passed since, one with a cancel recorded since, one whose lease ended unreclaimed. A mark left on
 * a row that is not sent reads, after a crash, as a send that may have reached the provider: the
 * reclaim gives a cancelled row back pending instead of cancelling it, an expired one fails as
 * "may have delivered it".
 */
async function fourLeases() {
  const inOneHour = { expiresAt: new Date(Date.now() + 3600_000).toISOString() }
  const ids = [
    await enqueue(t),
    await enqueue(t, undefined, inOneHour),
    await enqueue(t),
    await enqueue(t),
  ]
  const { leases } = await claimBatch(t.db, {
    limit: 4,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  const [go, expired, cancelled, ended] = ids as [string, string, string, string]
  await t.pool.query(
    `update mailer.email_outbox
        set send_at = now() - interval '2 seconds', expires_at = now() - interval '1 second'
      where id = $1`,
    [expired],
  )
  await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
    cancelled,
  ])
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [ended],
  )
  return { leases, go, expired, cancelled, ended }
}

const marks = async () =>
  (
    await t.pool.query<{ id: string; marked: boolean }>(
      `select id::text, send_started_at is not null as marked from mailer.email_outbox order by id`,
    )
  ).rows

test('the quick way: only the row it starts is marked', async () => {
  const { leases, go, expired, cancelled, ended } = await fourLeases()
  const r = await startSends(t.db, leases)
  expect([...r.started]).toEqual([go])
  expect([...r.expired]).toEqual([expired])
  expect([...r.cancelled]).toEqual([cancelled])
  expect([...r.lost]).toEqual([ended])
  expect(await marks()).toEqual([
    { id: go, marked: true },
    { id: expired, marked: false },
    { id: cancelled, marked: false },
    { id: ended, marked: false },
  ])
})

test('past a row another transaction holds: the same marks, and the held row named busy', async () => {
  const { leases, go, expired, cancelled, ended } = await fourLeases()
  const held = await enqueue(t)
  const more = await claimBatch(t.db, {
    limit: 1,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  // The held row's lock outlasts the check's 50 ms: it goes the slow way, row by row.
  const app = await holdRowLocked(t.pool, held)
  let r: Awaited<ReturnType<typeof startSends>>
  try {
    r = await startSends(t.db, [...leases, ...more.leases])
  } finally {
    await app.end('rollback')
  }
  expect([...r.busy]).toEqual([held])
  expect([...r.started]).toEqual([go])
  expect([...r.expired]).toEqual([expired])
  expect([...r.cancelled]).toEqual([cancelled])
  expect([...r.lost]).toEqual([ended])
  expect(await marks()).toEqual([
    { id: go, marked: true },
    { id: expired, marked: false },
    { id: cancelled, marked: false },
    { id: ended, marked: false },
    { id: held, marked: false },
  ])
})

test('an interrupted earlier send’s mark stays on a row the check refuses, the quick way or past a locked row', async () => {
  const inOneHour = { expiresAt: new Date(Date.now() + 3600_000).toISOString() }
  const quick = await enqueue(t, undefined, inOneHour)
  const slow = await enqueue(t, undefined, inOneHour)
  const held = await enqueue(t)
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = '2026-01-01T00:00:00Z', attempts = 1
      where id = any($1::bigint[])`,
    [[quick, slow]],
  )
  const { leases } = await claimBatch(t.db, {
    limit: 3,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  await t.pool.query(
    `update mailer.email_outbox
        set send_at = now() - interval '2 seconds', expires_at = now() - interval '1 second'
      where id = any($1::bigint[])`,
    [[quick, slow]],
  )
  const lease = (id: string) => leases.filter((l) => l.id === id)
  expect([...(await startSends(t.db, lease(quick))).expired]).toEqual([quick])
  const app = await holdRowLocked(t.pool, held)
  try {
    const r = await startSends(t.db, [...lease(slow), ...lease(held)])
    expect([...r.expired, ...r.busy]).toEqual([slow, held])
  } finally {
    await app.end('rollback')
  }
  const { rows } = await t.pool.query<{ id: string; mark: Date | null }>(
    'select id::text, send_started_at as mark from mailer.email_outbox where id = any($1::bigint[]) order by id',
    [[quick, slow]],
  )
  expect(rows).toEqual([
    { id: quick, mark: new Date('2026-01-01T00:00:00Z') },
    { id: slow, mark: new Date('2026-01-01T00:00:00Z') },
  ])
})
