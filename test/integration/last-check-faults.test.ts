// The last check before a send meeting a fault of its database (down, a row locked): no send of another database waits for it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { createSlots, type Slots } from '../../src/outbox/slots.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { holdRowLocked, type RowsHeld } from '../support/hold-row-locked.ts'
import { startOutageProxy } from '../support/outage-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(90_000)

// Two databases drained by one process, as MAILER_DATABASES configures it.
const shop = useTestDb({ resetEach: true })
const crm = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()
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

/** The crm database's engine, on the process-wide slots `shared` as the shop's; stopped after the test. */
function crmEngineOn(shared: Slots): TestEngine {
  const engine = createTestEngine(crm, { workerId: 'crm-worker', deps: { slots: slotsOf(shared) } })
  engines.push(engine)
  return engine
}

/**
 * The shop's database slow, not down: the statement that records a send as started runs until the
 * test deletes public.slow_gate's row (a trigger that waits while it has one: no lock, so the
 * check's 50 ms lock wait does not end it; only statement_timeout, 30 s, would).
 */
async function slowStarts() {
  await shop.pool.query(`
    create table public.slow_gate (x int);
    insert into public.slow_gate values (1);
    create function public.slow_start() returns trigger language plpgsql as $$
    begin
      if old.send_started_at is null and new.send_started_at is not null then
        while exists (select 1 from public.slow_gate) loop perform pg_sleep(0.01); end loop;
      end if;
      return new;
    end $$;
    create trigger slow_start before update on mailer.email_outbox
      for each row execute function public.slow_start();`)
  closing.push(async () => {
    await shop.pool.query(`
      drop trigger slow_start on mailer.email_outbox;
      drop function public.slow_start();
      drop table public.slow_gate;`)
  })
}

/** Whether the shop's last check statement is running now. */
async function checking(): Promise<boolean> {
  const r = await shop.pool.query(
    `select count(*)::int as n from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and state = 'active'
        and query ~ 'outbox_start_sends'`,
  )
  return r.rows[0].n === 1
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
  const crmEngine = crmEngineOn(shared)
  engines.push(shopEngine)
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
  const crmEngine = crmEngineOn(shared)
  engines.push(shopEngine)
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

test('a last check its database is slow to answer holds up no send of another database: the row is sent once it answers', async () => {
  const held = await enqueue(shop, undefined, inOneHour())
  await slowStarts()
  const shared = createSlots(1)
  const shopSlots = slotsOf(shared)
  const lines: { msg: string }[] = []
  const shopEngine = createTestEngine(shop, {
    workerId: 'shop-worker',
    deps: { slots: shopSlots, log: createLogger('warn', (l) => lines.push(JSON.parse(l))) },
  })
  const crmEngine = crmEngineOn(shared)
  engines.push(shopEngine)
  await shopEngine.start()
  await crmEngine.start()
  // The shop's row took the process's one send slot, and its last check is under way.
  await pollUntil(async () => (shopSlots.taken() === 1 && (await checking()) ? true : undefined))

  const other = await enqueue(crm)
  crmEngine.drainer.wake()
  // Sent while the shop's check still runs: bounded past statement_timeout (30 s), after which a
  // check fails, its row is released and its slot given back anyway.
  await crmEngine.events.waitFor(settledFor(other, 'sent'), 45_000)
  expect(lines.filter((l) => /could not start sends/.test(l.msg))).toEqual([])
  expect(await checking()).toBe(true)
  expect(shopEngine.sender.calls).toHaveLength(0)

  await shop.pool.query('delete from public.slow_gate')
  await shopEngine.events.waitFor(settledFor(held, 'sent'), 20_000)
  expect(shopEngine.sender.calls.map((m) => m.outboxId)).toEqual([held])
  expect(crmEngine.sender.calls.map((m) => m.outboxId)).toEqual([other])
  const row = await rowOf(shop, held)
  expect([row.status, row.attempts]).toEqual(['sent', 1])
  expect(await attemptsOf(shop, held, 'outcome')).toEqual([{ outcome: 'sent' }])
})

test('a row whose slow last check answers while another database’s send holds the slot, and whose worker stops meanwhile, is given back unsent and uncounted', async () => {
  const held = await enqueue(shop, undefined, inOneHour())
  await slowStarts()
  const shared = createSlots(1)
  const shopEngine = createTestEngine(shop, {
    workerId: 'shop-worker',
    deps: { slots: slotsOf(shared) },
  })
  const crmEngine = crmEngineOn(shared)
  crmEngine.sender.hold()
  await shopEngine.start()
  await crmEngine.start()
  await pollUntil(async () => ((await checking()) ? true : undefined))
  // The slot given back by the slow check goes to the other database's send, which stays in flight.
  const other = await enqueue(crm)
  crmEngine.drainer.wake()
  await pollUntil(async () => (crmEngine.sender.inFlight() === 1 ? true : undefined), 20_000)
  // The check answers (the send recorded as started) and the row waits for a slot; the worker stops.
  await shop.pool.query('delete from public.slow_gate')
  await pollUntil(async () =>
    (await rowOf(shop, held)).send_started_at !== null ? true : undefined,
  )
  await shopEngine.stop()

  expect(shopEngine.sender.calls).toEqual([])
  const row = await rowOf(shop, held)
  expect([row.status, row.attempts, row.send_started_at, row.lease_token]).toEqual([
    'pending',
    0,
    null,
    null,
  ])
  crmEngine.sender.release()
  await crmEngine.events.waitFor(settledFor(other, 'sent'))
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
