// A worker's registry entry notes its newest recorded send (sql/0201): written by the beat after it, once, as database time, never moved back.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { deregisterWorker } from '../../src/outbox/deregister-worker.ts'
import { extendLeases } from '../../src/outbox/heartbeat.ts'
import type { WorkerIdentity } from '../../src/outbox/worker-identity.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { sendNoted } from '../support/send-noted.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const worker = (
  unnotedSend: { atMs: number; agoMs: number } | null,
  id = 'host:1:abcdef',
): WorkerIdentity => ({
  id,
  host: 'host',
  pid: 1,
  version: 'test',
  unnotedSend,
})

/** Seconds since the send `table` notes (sql/0201's entries, 0204's stopped workers'), whole; null when none. */
const ageIn = async (table: string) =>
  (await t.pool.query(`select extract(epoch from now() - last_sent_at)::int as age from ${table}`))
    .rows[0]?.age ?? null

/**
 * Whether `table`'s note (its row `k`) of row `id`'s send lies between the row's sent_at and
 * `until` (SQL).
 */
const noteBetween = async (id: string, table: string, until: string) =>
  (
    await t.pool.query<{ between: boolean }>(
      `select k.last_sent_at between o.sent_at and ${until} as between
         from ${table} k, mailer.email_outbox o where o.id = $1`,
      [id],
    )
  ).rows[0]?.between ?? null

/** Seconds since the entry's last send, whole; null when it notes none. */
const sentAge = () => ageIn('mailer.workers')
/** Seconds since the send the stopped workers' note keeps (sql/0204), whole; null when none. */
const keptAge = () => ageIn('mailer.stopped_workers_last_send')
/** Whether the entry's note of row `id`'s send lies between its sent_at and the entry's last beat. */
const notedBetween = (id: string) => noteBetween(id, 'mailer.workers', 'k.last_heartbeat_at')
/** Whether the stopped workers' note lies between row `id`'s sent_at and now(). */
const keptBetween = (id: string) => noteBetween(id, 'mailer.stopped_workers_last_send', 'now()')

test('a beat notes its send as now() less its age; one with none to note keeps the entry’s; an older send never moves it back', async () => {
  await extendLeases(t.db, worker(null), [], 60)
  expect(await sentAge()).toBeNull()
  await extendLeases(t.db, worker({ atMs: 1, agoMs: 30_000 }), [], 60)
  expect(await sentAge()).toBe(30)
  await extendLeases(t.db, worker(null), [], 60)
  expect(await sentAge()).toBe(30)
  await extendLeases(t.db, worker({ atMs: 0, agoMs: 90_000 }), [], 60)
  expect(await sentAge()).toBe(30)
  await extendLeases(t.db, worker({ atMs: 2, agoMs: 5_000 }), [], 60)
  expect(await sentAge()).toBe(5)
})

test('a worker notes a send by its next beat, then no more until it sends again: a note moved back stays so', async () => {
  const engine = createTestEngine(t, { config: { leaseSeconds: 2, heartbeatSeconds: 1 } })
  try {
    const first = await enqueue(t)
    await engine.start()
    await sendNoted(t, first, true)
    expect(await notedBetween(first)).toBe(true)
    await t.pool.query(`update mailer.workers set last_sent_at = last_sent_at - interval '1 hour'`)
    // A beat begun after the move writes nothing over it (the idle reclaim's, every 2 s).
    const { rows } = await t.pool.query<{ at: Date }>('select now() as at')
    await pollUntil(async () => {
      const r = await t.pool.query('select 1 from mailer.workers where last_heartbeat_at > $1', [
        rows[0]!.at,
      ])
      return r.rowCount ? true : undefined
    })
    expect(Math.round((await sentAge()) / 60)).toBe(60)
    const second = await enqueue(t)
    await sendNoted(t, second)
    expect(await notedBetween(second)).toBe(true)
  } finally {
    await engine.stop()
  }
})

test('a clean stop keeps the newest send its entry noted, or its own unnoted one; an older one never moves it back; an entry purged as silent for a day keeps its own; none noted, none kept', async () => {
  await extendLeases(t.db, worker(null, 'a'), [], 60)
  await deregisterWorker(t.db, 'a')
  expect(await keptAge()).toBeNull()
  await extendLeases(t.db, worker({ atMs: 1, agoMs: 30_000 }, 'b'), [], 60)
  await extendLeases(t.db, worker({ atMs: 1, agoMs: 90_000 }, 'c'), [], 60)
  await deregisterWorker(t.db, 'b')
  expect(await keptAge()).toBe(30)
  await deregisterWorker(t.db, 'c')
  expect(await keptAge()).toBe(30)
  // An entry silent for a day, its send noted after the kept one, is purged by another's stop.
  await extendLeases(t.db, worker({ atMs: 1, agoMs: 10_000 }, 'd'), [], 60)
  await t.pool.query(
    `update mailer.workers set last_heartbeat_at = now() - interval '2 days' where id = 'd'`,
  )
  await deregisterWorker(t.db, 'e')
  expect(await keptAge()).toBe(10)
  expect((await t.pool.query('select count(*)::int as n from mailer.workers')).rows[0].n).toBe(0)
  // A send recorded since the stopping worker's last beat, told by its stop, entry or none.
  await deregisterWorker(t.db, 'f', { atMs: 1, agoMs: 60_000 })
  expect(await keptAge()).toBe(10)
  await deregisterWorker(t.db, 'f', { atMs: 2, agoMs: 4_000 })
  expect(await keptAge()).toBe(4)
})

test('a worker that sends and stops before its next beat notes that send by its stop', async () => {
  // A lease of 60 s: a beat at its start, the next 20 s (a heartbeat) or 60 s (idle) later.
  const engine = createTestEngine(t, { config: { leaseSeconds: 60, heartbeatSeconds: 20 } })
  const id = await enqueue(t)
  await engine.start()
  await pollUntil(async () => ((await rowOf(t, id)).status === 'sent' ? true : undefined))
  expect(
    (await t.pool.query('select last_sent_at from mailer.workers')).rows.map((r) => r.last_sent_at),
  ).toEqual([null])
  await engine.stop()
  expect(await keptBetween(id)).toBe(true)
})

test('a row past its attempts that a lookup finds sent after its interrupted send (the reclaim left it to be looked up) is noted as a send, though settled uncounted, not by markSent', async () => {
  // A lease of 60 s: no beat after the start's; the stop tells the send.
  const engine = createTestEngine(t, {
    config: { leaseSeconds: 60, heartbeatSeconds: 20 },
    deps: { lookup: async () => 'found' },
  })
  const id = await enqueue(t, undefined, { maxAttempts: 1 })
  // As the reclaim leaves its last attempt's interrupted send with lookups on: pending, its
  // attempts spent, marked; claimed only to look it up (lease.ts lookupOnly), settled by
  // settleLeases. Its sent_at is the settlement's, as a found send's is.
  await t.pool.query(
    `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '2 minutes'
      where id = $1`,
    [id],
  )
  await engine.start()
  await pollUntil(async () => ((await rowOf(t, id)).status === 'sent' ? true : undefined))
  await engine.stop()
  expect(await keptBetween(id)).toBe(true)
  expect(engine.sender.calls).toEqual([])
  expect((await rowOf(t, id)).attempts).toBe(1)
})
