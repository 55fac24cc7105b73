// The lease key: a drainer's claimed rows name it by a short key its registry entry holds, and whoever reads the row is told the worker's full id.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { createLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { deregisterWorker } from '../../src/outbox/deregister-worker.ts'
import { listOutbox } from '../../src/outbox/inspect.ts'
import { createLeaseKey, registerLeaseKey } from '../../src/outbox/lease-key.ts'
import { findOutboxRow } from '../../src/outbox/outbox-row.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { registryBeat } from '../../src/outbox/registry-beat.ts'
import { workerPresence } from '../../src/outbox/worker-presence.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

// A deployment's id (serve's host:pid:6 hex on a Fly machine): 27 characters.
const LONG_ID = 'e286de4f711986:12345:1a2b3c'

test('a drainer claims under a 3-character key its registry entry holds; the row read names its full id; its log lines carry the key', async () => {
  const lines: Record<string, unknown>[] = []
  const log = createLogger('debug', (line) => lines.push(JSON.parse(line)))
  const engine = createTestEngine(t, { workerId: LONG_ID, deps: { log } })
  engine.sender.hold()
  await engine.start()
  try {
    const id = await enqueue(t)
    await pollUntil(async () => ((await rowOf(t, id)).status === 'sending' ? true : undefined))
    const owner = (await rowOf(t, id)).lease_owner as string
    expect(owner).toMatch(/^[0-9a-z]{3}$/)
    const { rows } = await t.pool.query('select id, lease_key from mailer.workers')
    expect(rows).toEqual([{ id: LONG_ID, lease_key: owner }])
    expect((await findOutboxRow(t.db, id, null))?.leaseOwner).toBe(LONG_ID)
    const registered = lines.find((l) => l.msg === 'worker registered')
    expect(registered).toMatchObject({ db: 'test', workerId: LONG_ID, workerKey: owner })
    engine.sender.release()
    await pollUntil(async () => ((await rowOf(t, id)).status === 'sent' ? true : undefined))
    // The settlement's history names the worker by its full id, as before.
    const history = await t.pool.query('select worker_id from mailer.email_attempts')
    expect(history.rows).toEqual([{ worker_id: LONG_ID }])
    // Every line the drainer wrote after registering carries its key.
    const after = lines.slice(lines.indexOf(registered!))
    expect(after.length).toBeGreaterThan(1)
    expect(after.filter((l) => l.workerKey !== owner)).toEqual([])
  } finally {
    engine.sender.release()
    await engine.stop()
  }
})

const worker = (id: string) => ({ id, host: 'h', pid: 1, version: 'v' })

test('a live drainer whose registry entry was lost (purged as silent for a day, a failover to a replica it had not reached) registers again under the key its claimed rows name, so no other worker draws that key', async () => {
  const engine = createTestEngine(t, { workerId: LONG_ID, config: { heartbeatSeconds: 1 } })
  engine.sender.hold()
  await engine.start()
  try {
    const id = await enqueue(t)
    await pollUntil(async () => ((await rowOf(t, id)).status === 'sending' ? true : undefined))
    const owner = (await rowOf(t, id)).lease_owner as string
    await t.pool.query('delete from mailer.workers where id = $1', [LONG_ID])
    // The next heartbeat writes the entry again, with the key the worker still claims under.
    const entry = await pollUntil(async () => {
      const { rows } = await t.pool.query('select lease_key from mailer.workers where id = $1', [
        LONG_ID,
      ])
      return rows[0] as { lease_key: string | null } | undefined
    })
    expect(entry).toEqual({ lease_key: owner })
    expect(await registerLeaseKey(t.db, worker('other:2:abcdef'), owner)).toBeNull()
    expect((await findOutboxRow(t.db, id, null))?.leaseOwner).toBe(LONG_ID)
  } finally {
    engine.sender.release()
    await engine.stop()
  }
})
// A draw that gives `key`'s characters (each a digit or a-z) in turn.
const drawing = (...keys: string[]) => {
  const chars = keys.join('')
  let i = 0
  return () => '0123456789abcdefghijklmnopqrstuvwxyz'.indexOf(chars[i++ % chars.length]!) / 36
}
const claimAs = (owner: string) =>
  claimBatch(t.db, { limit: 1, workerId: owner, leaseSeconds: 30, defaultMaxAttempts: 3 })
const endLeases = () =>
  t.pool.query(`update mailer.email_outbox set lease_expires_at = now() - interval '1 second'
                 where status = 'sending'`)

test('a lost entry written back by a beat takes no key another entry holds by then, and the beat still goes through', async () => {
  expect(await registerLeaseKey(t.db, worker('other:2:abcdef'), 'k1x')).toBe('k1x')
  const beat = { ...worker(LONG_ID), leaseKey: 'k1x' }
  await sql`with ${registryBeat(beat)} select 1`.execute(t.db)
  await sql`with ${registryBeat(beat)} select 1`.execute(t.db)
  const { rows } = await t.pool.query('select id, lease_key from mailer.workers order by id')
  expect(rows).toEqual([
    { id: LONG_ID, lease_key: null },
    { id: 'other:2:abcdef', lease_key: 'k1x' },
  ])
})

test('a key another entry holds is drawn again; an entry keeps the key it has', async () => {
  expect(await registerLeaseKey(t.db, worker('a:1:000001'), 'k01')).toBe('k01')
  expect(await registerLeaseKey(t.db, worker('b:1:000002'), 'k01')).toBeNull()
  const b = createLeaseKey(t.db, worker('b:1:000002'), { random: drawing('k01', 'k02') })
  expect(await b.get()).toBe('k02')
  expect(b.current()).toBe('k02')
  // Registered again (its entry there, keyless after an older release's beat or not), it keeps its key.
  expect(await registerLeaseKey(t.db, worker('a:1:000001'), 'zzz')).toBe('k01')
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version) values ('c:1:000003', 'h', 1, 'v')`,
  )
  expect(await registerLeaseKey(t.db, worker('c:1:000003'), 'k01')).toBeNull()
  expect(await registerLeaseKey(t.db, worker('c:1:000003'), 'k03')).toBe('k03')
  const { rows } = await t.pool.query('select id, lease_key from mailer.workers order by id')
  expect(rows).toEqual([
    { id: 'a:1:000001', lease_key: 'k01' },
    { id: 'b:1:000002', lease_key: 'k02' },
    { id: 'c:1:000003', lease_key: 'k03' },
  ])
})

test("a reclaim's history names a key's worker by its full id; a key no entry holds, as written", async () => {
  await registerLeaseKey(t.db, worker(LONG_ID), 'q7x')
  const known = await enqueue(t)
  await claimAs('q7x')
  const unknown = await enqueue(t)
  await claimAs('zz9')
  await endLeases()
  await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
  const { rows } = await t.pool.query(
    'select outbox_id::text as id, worker_id from mailer.email_attempts order by outbox_id',
  )
  expect(rows).toEqual([
    { id: known, worker_id: LONG_ID },
    { id: unknown, worker_id: 'zz9' },
  ])
})

test('a stop keeps its registry entry while a row in flight names its key, so the key is not drawn again', async () => {
  await registerLeaseKey(t.db, worker(LONG_ID), 'q7x')
  const id = await enqueue(t)
  await claimAs('q7x')
  await deregisterWorker(t.db, LONG_ID)
  expect(await registerLeaseKey(t.db, worker('other:2:abcdef'), 'q7x')).toBeNull()
  expect((await findOutboxRow(t.db, id, null))?.leaseOwner).toBe(LONG_ID)
  // Once no row names it, the next stop removes it.
  await t.pool.query(`update mailer.email_outbox set status = 'pending', lease_owner = null,
                        lease_token = null, lease_expires_at = null`)
  await deregisterWorker(t.db, LONG_ID)
  const { rows } = await t.pool.query('select count(*)::int as n from mailer.workers')
  expect(rows).toEqual([{ n: 0 }])
})

test('during a rolling deploy an older binary (keyless entry, its full id as lease owner) and a keyed one are each named and counted', async () => {
  const older = 'olderhost:4321:0a0b0c'
  // The older binary's registration (registryBeat without a key) and its claim under its full id.
  await sql`with ${registryBeat(worker(older))} select 1`.execute(t.db)
  const olderRow = await enqueue(t)
  await claimAs(older)
  await registerLeaseKey(t.db, worker(LONG_ID), 'q7x')
  const newerRow = await enqueue(t)
  await claimAs('q7x')
  expect(await workerPresence(t.db, { liveSeconds: 60, overdueSeconds: 60 })).toMatchObject({
    claimHolders: 2,
    liveWorkers: 2,
  })
  const { items } = await listOutbox(t.db, {}, { limit: 10 }, null)
  expect(items.map((r) => [r.id, r.leaseOwner])).toEqual([
    [newerRow, LONG_ID],
    [olderRow, older],
  ])
  await endLeases()
  await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
  const { rows } = await t.pool.query(
    'select outbox_id::text as id, worker_id from mailer.email_attempts order by outbox_id',
  )
  expect(rows).toEqual([
    { id: olderRow, worker_id: older },
    { id: newerRow, worker_id: LONG_ID },
  ])
})
