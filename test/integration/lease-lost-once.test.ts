// A lease lost is counted once: a settlement that finds a lease the heartbeat already reported lost does not count it again.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'
import { recordOutcome } from '../../src/outbox/lease-outcome.ts'
import { useTestDb } from '../support/db.ts'
import { deliveryDeps } from '../support/delivery-deps.ts'
import { enqueue } from '../support/engine.ts'
import { createFakeSender } from '../support/fake-sender.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test('a settlement of a lease the heartbeat found lost finds it lost and counts nothing more; one it did not is counted', async () => {
  const known = await enqueue(t)
  const unknown = await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: 2,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  // Both rows reclaimed and claimed again elsewhere: the leases are lost.
  await t.pool.query(
    'update mailer.email_outbox set lease_token = gen_random_uuid() where id = any($1::bigint[])',
    [[known, unknown]],
  )
  const deadlines = createLeaseDeadlines(systemClock, 30_000)
  deadlines.markLost(leases.find((l) => l.id === known)!)
  const events: EngineEvent[] = []
  const done: string[] = []
  const d = deliveryDeps(t.db, {
    sender: createFakeSender(),
    onEvent: (e) => events.push(e),
    deadlines,
    done: (l) => done.push(l.id),
  })
  for (const l of leases) await recordOutcome(d, l, { kind: 'sent' })
  expect(events).toEqual([{ type: 'lease_lost', db: 'test', id: unknown, during: 'settle' }])
  expect(done).toEqual([known, unknown])
})
