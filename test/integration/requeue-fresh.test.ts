// A row retried through the API is a fresh pending row: its old cancel is gone, and the workers hear of it, one row or many.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { requeueMatching } from '../../src/outbox/bulk-requeue.ts'
import { cancelOutboxRow } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { requeueOutboxRow } from '../../src/outbox/requeue.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { payloadsHeard } from '../support/notifications.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test('a cancelled row retried is claimed without its old cancel, so it is sent', async () => {
  const id = await enqueue(t)
  await cancelOutboxRow(t.db, id, null)
  expect((await requeueOutboxRow(t.db, id, null))?.status).toBe('pending')
  const { leases } = await claimBatch(t.db, {
    limit: 1,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  expect(leases.map((l) => [l.id, l.cancelRequested])).toEqual([[id, false]])
})

test('a bulk retry wakes the workers', async () => {
  const ids = [await enqueue(t), await enqueue(t)]
  for (const id of ids) await cancelOutboxRow(t.db, id, null)
  const heard = await payloadsHeard(t, async () => {
    const r = await requeueMatching(t.db, {}, null, { limit: 10 })
    expect(r.items.map((i) => i.id)).toEqual(ids)
  })
  expect(heard).toEqual([''])
})
