// The last check before a send meeting a fault of its database (down, a row locked): no send of another database waits for it.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { createSlots, type Slots } from '../../src/outbox/slots.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { holdRowLocked, type RowsHeld } from '../support/hold-row-locked.ts'
import { startOutageProxy } from '../support/outage-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(90_000)

// Two databases drained by one process, as MAILER_DATABASES configures it.
const shop = useTestDb({ resetEach: true })
const crm = useTestDb({ resetEach: true })
const engines: TestEngine[] = []
const closing: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()))
  for (const close of closing.splice(0)) await close()
})
// An expiresAt: the claim does not record the row's send as started, so its last check comes in
// its send slot, right before the send.
const inOneHour = () => ({ expiresAt: new Date(Date.now() + 3_600_000).toISOString() })

/** The process-wide slots as one drainer sees them: `taken()` counts the slots it took. */
function slotsOf(shared: Slots): Slots & { taken(): number } {
  let taken = 0
  return {
    size: shared.size,
    free: () => shared.free(),
    tryAcquire: () => {
      const ok = shared.tryAcquire()
      if (ok) taken += 1
      return ok
    },
    acquire: async (signal) => {
      const ok = await shared.acquire(signal)
      if (ok) taken += 1
      return ok
    },
    release: () => shared.release(),
    taken: () => taken,
  }
}

test('one database going down between a claim and its last check holds up no send of another database: the row given back is sent once it is back', async () => {
  const held = await enqueue(shop, undefined, inOneHour())
  const proxy = await startOutageProxy(shop.url)
  const handle = openDb({ name: 'shop', url: proxy.url, log: silentLogger, maxConnections: 4 })
  closing.push(
    () => handle.close(),
    () => proxy.close(),
  )
  const shared = createSlots(1)
  const shopSlots = slotsOf(shared)
  let down = false
  const shopEngine = createTestEngine(shop, {
    workerId: 'shop-worker',
    handle,
    deps: {
      slots: shopSlots,
      // The database goes away (a restart, a failover, the network) right after the claim.
      claim: async (db, p) => {
        const claim = await claimBatch(db, p)
        if (!down && claim.leases.some((l) => l.id === held)) {
          down = true
          await proxy.down()
        }
        return claim
      },
    },
  })
  const crmEngine = createTestEngine(crm, {
    workerId: 'crm-worker',
    deps: { slots: slotsOf(shared) },
  })
  engines.push(shopEngine, crmEngine)
  await shopEngine.start()
  await crmEngine.start()
  // The shop's row took the process's one send slot for its last check, which cannot be made.
  await pollUntil(async () => (down && shopSlots.taken() === 1 ? true : undefined))

  const other = await enqueue(crm)
  crmEngine.drainer.wake()
  // Sent while the shop's database is still away.
  await crmEngine.events.waitFor(settledFor(other, 'sent'), 20_000)
  expect(shopEngine.sender.calls).toHaveLength(0)

  await proxy.up()
  shopEngine.drainer.wake()
  await shopEngine.events.waitFor(settledFor(held, 'sent'), 30_000)
  expect(shopEngine.sender.calls.map((m) => m.outboxId)).toEqual([held])
  expect(crmEngine.sender.calls.map((m) => m.outboxId)).toEqual([other])
  const row = await rowOf(shop, held)
  expect([row.status, row.attempts]).toEqual(['sent', 1])
})
test('a row of one database that an application holds locked between its claim and its last check holds up no send of another database: both are sent once', async () => {
  const held = await enqueue(shop, undefined, inOneHour())
  const shared = createSlots(1)
  const shopSlots = slotsOf(shared)
  const lines: { msg: string }[] = []
  const shopLog = createLogger('warn', (l) => lines.push(JSON.parse(l)))
  // The application begins its UPDATE of the row's message right after the worker claimed it.
  let app = null as Promise<RowsHeld> | null
  const shopEngine = createTestEngine(shop, {
    workerId: 'shop-worker',
    deps: {
      slots: shopSlots,
      log: shopLog,
      claim: async (db, p) => {
        const claim = await claimBatch(db, p)
        if (!app && claim.leases.some((l) => l.id === held)) {
          app = holdRowLocked(shop.pool, held, 'update')
          await app
        }
        return claim
      },
    },
  })
  const crmEngine = createTestEngine(crm, {
    workerId: 'crm-worker',
    deps: { slots: slotsOf(shared) },
  })
  engines.push(shopEngine, crmEngine)
  try {
    await shopEngine.start()
    await crmEngine.start()
    // The shop's row holds the process's one send slot: its last check is under way.
    await pollUntil(async () => (app && shopSlots.taken() === 1 ? true : undefined))

    const other = await enqueue(crm)
    crmEngine.drainer.wake()
    // Sent while the application still holds the shop's row: bounded past statement_timeout
    // (30 s), after which a check that waited for the lock fails and gives its slot back anyway.
    await pollUntil(
      async () => (crmEngine.sender.calls.some((m) => m.outboxId === other) ? true : undefined),
      45_000,
    )
    expect(lines.filter((l) => /could not start sends/.test(l.msg))).toEqual([])
    expect(shopEngine.sender.calls).toHaveLength(0)

    await (await app)?.end('commit')
    await shopEngine.events.waitFor(settledFor(held, 'sent'), 20_000)
    await crmEngine.events.waitFor(settledFor(other, 'sent'))
    expect(shopEngine.sender.calls.map((m) => m.outboxId)).toEqual([held])
    expect(crmEngine.sender.calls.map((m) => m.outboxId)).toEqual([other])
    const row = await rowOf(shop, held)
    expect([row.status, row.attempts]).toEqual(['sent', 1])
  } finally {
    await app?.then((rows) => rows.end('rollback')).catch(() => {})
  }
})

test('the last check’s statement starts the rows it can lock at once, names busy a row another transaction holds, leaves out a lost one, and keeps the caller’s lock_timeout', async () => {
  const ids = [await enqueue(shop), await enqueue(shop), await enqueue(shop)]
  const { leases } = await claimBatch(shop.db, {
    limit: 3,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  const [free, held, lost] = ids as [string, string, string]
  // Reclaimed and claimed again elsewhere: the lease is lost.
  await shop.pool.query(
    `update mailer.email_outbox set lease_token = gen_random_uuid() where id = $1`,
    [lost],
  )
  const app = await holdRowLocked(shop.pool, held)
  const worker = await shop.pool.connect()
  try {
    await worker.query(`set lock_timeout = '20ms'`)
    // Answers though one of its rows is locked, and waits no longer than its own 50 ms for it.
    const { rows } = await worker.query(
      'select * from mailer.start_sends_unlocked($1::bigint[], $2::uuid[]) order by id',
      [leases.map((l) => l.id), leases.map((l) => l.token)],
    )
    expect(rows).toEqual([
      { id: free, started: true, cancelled: false, expired: false, busy: false },
      { id: held, started: false, cancelled: false, expired: false, busy: true },
    ])
    expect((await worker.query('show lock_timeout')).rows).toEqual([{ lock_timeout: '20ms' }])
    await app.end('rollback')
    // Nothing held: the quick way, which also gives the caller's setting back.
    const again = await worker.query(
      'select * from mailer.start_sends_unlocked($1::bigint[], $2::uuid[])',
      [[held], [leases.find((l) => l.id === held)!.token]],
    )
    expect(again.rows).toEqual([
      { id: held, started: true, cancelled: false, expired: false, busy: false },
    ])
    expect((await worker.query('show lock_timeout')).rows).toEqual([{ lock_timeout: '20ms' }])
  } finally {
    await app.end('rollback').catch(() => {})
    await worker.query('reset lock_timeout')
    worker.release()
  }
  expect((await rowOf(shop, free)).send_started_at).not.toBeNull()
  expect((await rowOf(shop, lost)).send_started_at).toBeNull()
})
