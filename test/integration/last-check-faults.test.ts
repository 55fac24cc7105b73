// The last check before a send meeting a fault of its database (down, a row locked): no send of another database waits for it.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { createSlots, type Slots } from '../../src/outbox/slots.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
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
