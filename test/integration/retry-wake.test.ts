// Rows never wait for the backstop poll or a leaked slot: retries are re-armed, failed batches freed.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

test('a lone throttled row is retried at its Retry-After (the poll is 10 minutes away)', async () => {
  engine = createTestEngine(t)
  await engine.start()
  const e = engine
  e.sender.hold()
  const id = await enqueue(t)
  e.sender.script.set(id, [
    {
      kind: 'retry',
      code: 'ApplicationThrottled',
      message: 'slow down',
      afterMs: 300,
      throttled: true,
    },
    { kind: 'retry', code: 'http_500', message: 'oops', afterMs: 300 },
  ])
  e.sender.release()
  await e.events.waitFor(settledFor(id, 'sent'), 20_000)
  expect(await rowOf(t, id)).toMatchObject({ status: 'sent', attempts: 2 })
  expect(e.sender.calls.length).toBe(3)
})

test('a send gate that cannot reach the database releases the row, which is then sent', async () => {
  let failures = 1
  engine = createTestEngine(t, {
    deps: {
      gate: {
        open: false,
        acquire: async () => {
          if (failures-- > 0) throw new Error('Connection terminated unexpectedly')
          return { release: async () => {} }
        },
        pause: async () => {},
      },
    },
  })
  await engine.start()
  const id = await enqueue(t)
  await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
  // Released, not failed: the attempt that never reached the provider is not counted.
  expect(await rowOf(t, id)).toMatchObject({ status: 'sent', attempts: 1 })
  await leasesHeldReach(engine, 0)
})

test('a delivery that throws unexpectedly frees its slots and stops heartbeating its leases', async () => {
  let thrown = false
  engine = createTestEngine(t, {
    config: { concurrency: 1 },
    deps: {
      onEvent: (e) => {
        if (e.type === 'settled' && !thrown) {
          thrown = true
          throw new Error('a bug in an event handler')
        }
      },
    },
  })
  await engine.start()
  const first = await enqueue(t)
  await pollUntil(async () => ((await rowOf(t, first)).status === 'sent' ? true : undefined))
  // With its only slot leaked, the drainer would never claim the second row.
  const second = await enqueue(t)
  await pollUntil(async () => ((await rowOf(t, second)).status === 'sent' ? true : undefined))
  await leasesHeldReach(engine, 0)
})

/**
 * The drainer's own count of leases held comes to `n` (within pollUntil's bound). The row reads
 * `sent` once its settlement commits; the drainer drops the lease only after that answer reaches
 * it (and after the delivery's catch, for a throw): read at once, the count can still be 1.
 */
async function leasesHeldReach(e: TestEngine, n: number) {
  const held = await pollUntil(async () => {
    const now = e.drainer.status().inFlight
    return now === n ? now : undefined
  }).catch(() => e.drainer.status().inFlight)
  expect(held).toBe(n)
}
