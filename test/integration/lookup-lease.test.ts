// A mailbox lookup however long (Graph: two requests, each with its own deadline) is followed by a send only while the lease surely holds a send's margin.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock } from '../../src/clock.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { deliverBatch } from '../../src/outbox/deliver.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'
import type { LookupResult } from '../../src/outbox/mailbox-lookup.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'
import { deliveryDeps, testSettlements } from '../support/delivery-deps.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { createFakeSender } from '../support/fake-sender.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const LEASE_MS = 60_000
// GRAPH_REQUEST_TIMEOUT_SECONDS at its largest allowed (half the lease): a lookup's two requests
// may take up to the whole lease between them.
const REQUEST_TIMEOUT_MS = 30_000

/**
 * An interrupted send's row, claimed with a lease confirmed at `now`, delivered with a lookup that
 * answers `not_found` after `lookupMs` of this process's clock (heartbeats failing meanwhile: the
 * lease is not extended). Returns what the transport was asked to send and the row after.
 */
async function resendAfterLookup(lookupMs: number) {
  const id = await enqueue(t)
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where id = $1`,
    [id],
  )
  const { leases } = await claimBatch(t.db, {
    limit: 1,
    workerId: 'w1',
    leaseSeconds: LEASE_MS / 1000,
    defaultMaxAttempts: 3,
  })
  expect(leases.map((l) => l.ambiguous)).toEqual([true])
  let now = 1_000_000
  const clock: Clock = { now: () => now, sleep: systemClock.sleep }
  // As claim-round.ts makes them for Graph: a send starts only with a request timeout to spare.
  const deadlines = createLeaseDeadlines(clock, LEASE_MS, {
    sendTimeoutMs: REQUEST_TIMEOUT_MS,
    heartbeatMs: LEASE_MS / 3,
  })
  deadlines.confirm(leases, now)
  const sender = createFakeSender()
  const lookups: string[] = []
  const done: string[] = []
  await deliverBatch(
    deliveryDeps(t.db, {
      sender,
      settle: testSettlements(t.db, { leaseSeconds: LEASE_MS / 1000, clock }),
      start: (l) => startSends(t.db, l),
      clock,
      lookup: async (mail): Promise<LookupResult> => {
        lookups.push(mail.outboxId)
        now += lookupMs
        return 'not_found'
      },
      deadlines,
      done: (l) => done.push(l.id),
    }),
    leases,
  )
  expect([lookups, done]).toEqual([[id], [id]])
  return { sent: sender.calls.length, row: await rowOf(t, id) }
}

test('a quick lookup that finds nothing is followed by the send', async () => {
  const { sent, row } = await resendAfterLookup(1_000)
  expect([sent, row.status]).toEqual([1, 'sent'])
})

test('a lookup of two requests timing out one after the other sends nothing: the lease is checked after it', async () => {
  // Two deadlines of 30 s, less a second: 2 s of the 60 s lease left, under the 31 s a send needs.
  const { sent, row } = await resendAfterLookup(2 * REQUEST_TIMEOUT_MS - 2_000)
  expect(sent).toBe(0)
  // Handed back uncounted, its interrupted send's mark kept for the next claim's lookup.
  expect(row).toMatchObject({ status: 'pending', attempts: 0 })
  expect(row.send_started_at).not.toBeNull()
})

test('so does one request that used its whole deadline, past the send margin', async () => {
  // 30 s of 60 used: 30 s left, one short of the margin (a request timeout and a second).
  const { sent, row } = await resendAfterLookup(REQUEST_TIMEOUT_MS)
  expect([sent, row.status]).toEqual([0, 'pending'])
})
