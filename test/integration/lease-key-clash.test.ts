// The lease key's edges: a lost registry entry whose key another worker drew meanwhile, and a beat that writes a key another transaction is writing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { extendReachableLeases } from '../../src/outbox/heartbeat.ts'
import { createLeaseKey, registerLeaseKey } from '../../src/outbox/lease-key.ts'
import { findOutboxRow } from '../../src/outbox/outbox-row.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { untilLockWaits } from '../support/lock-waits.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const LONG_ID = 'e286de4f711986:12345:1a2b3c'
const OTHER = 'other:2:abcdef'
const worker = (id: string) => ({ id, host: 'h', pid: 1, version: 'v' })
const entries = async () =>
  (await t.pool.query('select id, lease_key from mailer.workers order by id')).rows as {
    id: string
    lease_key: string | null
  }[]
const statusIs = (id: string, status: string) =>
  pollUntil(async () => ((await rowOf(t, id)).status === status ? true : undefined))

test('a live drainer whose lost entry finds its key drawn by another worker draws a new key: its next claims name it, the other keeps its key, and its row in flight still settles under its lease token', async () => {
  const engine = createTestEngine(t, { workerId: LONG_ID, config: { heartbeatSeconds: 1 } })
  engine.sender.hold()
  await engine.start()
  try {
    const first = await enqueue(t)
    await statusIs(first, 'sending')
    const owner = (await rowOf(t, first)).lease_owner as string
    // The entry is lost, and another worker draws the key its claimed row still names.
    await t.pool.query('delete from mailer.workers where id = $1', [LONG_ID])
    expect(await registerLeaseKey(t.db, worker(OTHER), owner)).toBe(owner)
    // The next beat writes the entry back; the key is the other's.
    await pollUntil(async () => ((await entries()).length === 2 ? true : undefined))
    // The row in flight is settled by the worker that holds its lease: the settlement is fenced by
    // the lease token, not by the key the row names.
    engine.sender.release()
    await statusIs(first, 'sent')
    engine.sender.hold()
    const second = await enqueue(t)
    await statusIs(second, 'sending')
    expect((await findOutboxRow(t.db, second, null))?.leaseOwner).toBe(LONG_ID)
    const now = await entries()
    expect(now.find((e) => e.id === OTHER)?.lease_key).toBe(owner)
    const own = now.find((e) => e.id === LONG_ID)?.lease_key
    expect(own).toMatch(/^[0-9a-z]{3}$/)
    expect(own).not.toBe(owner)
    expect((await rowOf(t, second)).lease_owner).toBe(own)
    const history = await t.pool.query(
      'select outbox_id::text as id, outcome, worker_id from mailer.email_attempts',
    )
    expect(history.rows).toEqual([{ id: first, outcome: 'sent', worker_id: LONG_ID }])
  } finally {
    engine.sender.release()
    await engine.stop()
  }
})

test("an idle worker's reclaim finds its lost entry's key held by another: the key is dropped and a new one drawn", async () => {
  // Draws give k1x, then k2y.
  const chars = 'k1xk2y'
  let i = 0
  const random = () => '0123456789abcdefghijklmnopqrstuvwxyz'.indexOf(chars[i++]!) / 36
  const key = createLeaseKey(t.db, worker(LONG_ID), { random })
  expect(await key.get()).toBe('k1x')
  await t.pool.query('delete from mailer.workers where id = $1', [LONG_ID])
  expect(await registerLeaseKey(t.db, worker(OTHER), 'k1x')).toBe('k1x')
  const { beat } = await reclaimExpired(t.db, {
    defaultMaxAttempts: 3,
    beat: { ...worker(LONG_ID), leaseKey: key.current() },
  })
  expect(beat).toEqual({ sent: 'k1x', entry: null })
  key.beaten(beat!)
  expect(await key.get()).toBe('k2y')
  expect(await entries()).toEqual([
    { id: LONG_ID, lease_key: 'k2y' },
    { id: OTHER, lease_key: 'k1x' },
  ])
  // A beat sent before that with the old key, answered after, says nothing more.
  key.beaten({ sent: 'k1x', entry: null })
  expect(key.current()).toBe('k2y')
})

test("a heartbeat whose lost entry's key another transaction is writing at the same instant goes through: the entry comes back keyless, the other's key stands", async () => {
  const other = await t.pool.connect()
  try {
    await other.query('begin')
    await other.query(
      `insert into mailer.workers (id, host, pid, version, lease_key) values ($1, 'h', 2, 'v', 'k1x')`,
      [OTHER],
    )
    // The heartbeat of a worker whose entry is gone, holding k1x: it waits on the other's insert.
    const beat = extendReachableLeases(t.db, { ...worker(LONG_ID), leaseKey: 'k1x' }, [], 30).then(
      () => 'went through',
      (error: { code?: string; message?: string }) => `${error.code}: ${error.message}`,
    )
    await untilLockWaits(t.pool)
    await other.query('commit')
    expect(await beat).toBe('went through')
    expect(await entries()).toEqual([
      { id: LONG_ID, lease_key: null },
      { id: OTHER, lease_key: 'k1x' },
    ])
  } finally {
    await other.query('rollback').catch(() => {})
    other.release()
  }
})
