// A row cancelled through the API while pending gets its history entry, one or many at a time; a claimed one gets it from its worker.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { cancelMatching } from '../../src/outbox/bulk-cancel.ts'
import { cancelOutboxRow } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test('one pending row cancelled: one history entry, cancelled; a claimed one’s request records none yet', async () => {
  const claimed = await enqueue(t)
  await claimBatch(t.db, { limit: 1, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 })
  const pending = await enqueue(t)
  expect((await cancelOutboxRow(t.db, pending, null))?.status).toBe('cancelled')
  expect((await cancelOutboxRow(t.db, claimed, null))?.status).toBe('sending')
  expect(await attemptsOf(t, pending, 'attempt, outcome, error_code, kind')).toEqual([
    { attempt: 0, outcome: 'cancelled', error_code: 'cancelled', kind: 'attempt' },
  ])
  expect(await attemptsOf(t, claimed, 'outcome')).toEqual([])
})

test('a bulk cancel records one entry per pending row it cancels', async () => {
  const ids = [await enqueue(t), await enqueue(t)]
  const r = await cancelMatching(t.db, {}, null, { limit: 10 })
  expect(r.items.map((i) => i.outcome)).toEqual(['cancelled', 'cancelled'])
  for (const id of ids)
    expect(await attemptsOf(t, id, 'outcome')).toEqual([{ outcome: 'cancelled' }])
})

test('a pending row whose earlier send was interrupted, cancelled one or many at a time: left pending with its cancel recorded, no entry yet (its worker records the outcome)', async () => {
  const ids = [await enqueue(t), await enqueue(t)]
  // Each was claimed and its send started, then its lease ended and a reclaim gave it back pending.
  await t.pool.query(
    `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '2 minutes',
            last_error_code = 'lease_expired' where id = any($1::bigint[])`,
    [ids],
  )
  expect((await cancelOutboxRow(t.db, ids[0]!, null))?.status).toBe('pending')
  expect((await cancelMatching(t.db, {}, null, { limit: 10 })).items).toEqual([
    { id: ids[1]!, outcome: 'cancel_requested' },
  ])
  for (const id of ids) expect(await attemptsOf(t, id, 'outcome, error')).toEqual([])
})
