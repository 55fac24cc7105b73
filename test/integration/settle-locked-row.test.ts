// Settlements past a row another transaction holds locked: the rest of the batch is recorded at once, that row once the lock goes.
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'
import { markSent } from '../../src/outbox/mark-sent.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import { BUSY_OUTCOME } from '../../src/outbox/settle-item.ts'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
let handle: DbHandle | null = null

beforeAll(async () => {
  // A lock wait ends after 300 ms: statement_timeout (30 s) does the same at the scale of a real
  // lease, and here a statement that waits for a lock fails within the test's 2 s lease.
  const name = new URL(t.url).pathname.slice(1)
  await t.pool.query(`alter database ${name} set lock_timeout = '300ms'`)
  handle = openDb({ name: 'test', url: t.url, log: silentLogger, maxConnections: 8 })
})
afterEach(async () => {
  await engine?.stop()
  engine = null
})
afterAll(async () => {
  await handle?.close()
})

const LEASE_SECONDS = 2

test('sends finished together while the application holds one of their rows locked are each recorded sent once, none reclaimed and sent again', async () => {
  const locked = await enqueue(t)
  const other = await enqueue(t)
  const sender = createFakeSender()
  sender.hold()
  engine = createTestEngine(t, {
    config: { leaseSeconds: LEASE_SECONDS, heartbeatSeconds: LEASE_SECONDS / 4 },
    deps: { sender },
    handle: handle as DbHandle,
  })
  await engine.start()
  await pollUntil(async () => (sender.inFlight() === 2 ? true : undefined))

  // The application updates one row's message in a transaction it keeps open while both sends
  // finish: their outcomes go to the database together.
  const app = await holdRowLocked(t.pool, locked, 'update')
  try {
    sender.release()
    // Until the other row's outcome is recorded, or its lease is given up.
    await engine.events.waitFor(
      (e) => (e.type === 'settled' || e.type === 'lease_lost') && e.id === other,
    )
    await app.end('commit')
  } finally {
    await app.end('rollback')
  }
  // Both end sent (a row given up would be reclaimed and sent again meanwhile).
  await pollUntil(async () => {
    const rows = await Promise.all([rowOf(t, locked), rowOf(t, other)])
    return rows.every((r) => r.status === 'sent') ? true : undefined
  })
  for (const id of [locked, other]) {
    expect(sender.calls.filter((m) => m.outboxId === id)).toHaveLength(1)
    expect(await attemptsOf(t, id, 'outcome')).toEqual([{ outcome: 'sent' }])
  }
  expect(engine.events.events.filter((e) => e.type === 'lease_lost')).toEqual([])
})

test('the settlement statements wait for no lock: rows nobody holds are recorded, a held one comes back busy, a lost one not at all', async () => {
  for (let i = 0; i < 6; i++) await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: 6,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  const [sentFree, sentHeld, sentLost, retryFree, retryHeld, retryLost] = leases as [
    Lease,
    Lease,
    Lease,
    Lease,
    Lease,
    Lease,
  ]
  const item = (l: Lease, kind: 'sent' | 'released') => ({
    id: l.id,
    token: l.token,
    settlement: { kind } as const,
    startedAt: null,
  })
  // Reclaimed and claimed again elsewhere: lost.
  await t.pool.query(
    `update mailer.email_outbox set lease_token = gen_random_uuid() where id = any($1::bigint[])`,
    [[sentLost.id, retryLost.id]],
  )
  const app = await holdRowLocked(t.pool, [sentHeld.id, retryHeld.id])
  try {
    // Both answer, though rows of theirs are locked, before the database's lock_timeout is met
    // (markSent after its own 50 ms wait, settleLeases at once).
    const marked = await markSent(
      t.db,
      [sentFree, sentHeld, sentLost].map((l) => item(l, 'sent')),
      'w1',
    )
    expect(marked).toEqual({ sent: new Set([sentFree.id]), busy: new Set([sentHeld.id]) })
    const settled = await settleLeases(
      t.db,
      [retryFree, retryHeld, retryLost].map((l) => item(l, 'released')),
      { workerId: 'w1', defaultMaxAttempts: 3, throttleDeadlineSeconds: 60 },
    )
    expect(settled.map((r) => [r.id, r.status, r.outcome]).sort()).toEqual(
      [
        [retryFree.id, 'pending', 'released'],
        [retryHeld.id, 'sending', BUSY_OUTCOME],
      ].sort(),
    )
  } finally {
    await app.end('commit')
  }
  // Held rows untouched, history of the busy ones unwritten.
  for (const l of [sentHeld, retryHeld]) {
    expect((await rowOf(t, l.id)).status).toBe('sending')
    expect(await attemptsOf(t, l.id, 'outcome')).toEqual([])
  }
})

test('a batch of sent rows nobody holds is recorded as mark_sent recorded it: one update per row, no lock record per row in the WAL', async () => {
  const ROWS = 50
  for (let i = 0; i < ROWS; i++) await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: ROWS,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: true,
  })
  expect(leases).toHaveLength(ROWS)
  await t.pool.query('create extension if not exists pg_walinspect')
  const lsn = async () =>
    (await t.pool.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn'))
      .rows[0]!.lsn
  const from = await lsn()
  const marked = await markSent(
    t.db,
    leases.map((l) => ({
      id: l.id,
      token: l.token,
      settlement: { kind: 'sent' },
      startedAt: null,
    })),
    'w1',
  )
  const to = await lsn()
  expect(marked).toEqual({ sent: new Set(leases.map((l) => l.id)), busy: new Set() })
  // The WAL is read up to where it is flushed (the walwriter's next round, with commits async).
  await pollUntil(async () => {
    const { rows } = await t.pool.query<{ flushed: boolean }>(
      'select pg_current_wal_flush_lsn() >= $1::pg_lsn as flushed',
      [to],
    )
    return rows[0]!.flushed ? true : undefined
  })
  // The outbox table's heap records in that span, each once with the pages it wrote. An update
  // whose new version goes to another page logs a lock record of its own (heap_update, so that
  // replay sees the old version locked meanwhile): those are not the per-row locks at stake.
  const { rows } = await t.pool.query<{ type: string; pages: number }>(
    `select record_type as type, count(distinct relblocknumber)::int as pages
       from pg_get_wal_block_info($1::pg_lsn, $2::pg_lsn, false)
      where resource_manager = 'Heap' and relforknumber = 0
        and relfilenode = pg_relation_filenode('mailer.email_outbox')
        and reldatabase = (select oid from pg_database where datname = current_database())
      group by start_lsn, record_type`,
    [from, to],
  )
  const updates = rows.filter((r) => r.type === 'UPDATE' || r.type === 'HOT_UPDATE')
  expect({
    updates: updates.length,
    locks: rows.filter((r) => r.type === 'LOCK').length,
  }).toEqual({ updates: ROWS, locks: updates.filter((r) => r.pages > 1).length })
})
