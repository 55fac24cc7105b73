// mailer.settle_verdict at its edges: which of expired, throttled out and exhausted a retry ends as, the instants where each begins, the attempts it counts.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

/**
 * The verdict of a retry, in one statement (so `now()` is one instant): `sinceS` and `expiresInS`
 * are seconds from now (null: none), as are the delay and the deadline.
 */
async function verdict(o: {
  refund?: boolean
  delayS?: number
  sinceS?: number | null
  expiresInS?: number | null
  attemptsAfter?: number
  maxAttempts?: number
  deadlineS?: number
}): Promise<string> {
  const { rows } = await t.pool.query<{ v: string }>(
    `select mailer.settle_verdict('retry', $1, $2 * 1000,
              now() + make_interval(secs => $3), now() + make_interval(secs => $4),
              $5, $6, $7) as v`,
    [
      o.refund ?? false,
      o.delayS ?? 10,
      o.sinceS ?? null,
      o.expiresInS ?? null,
      o.attemptsAfter ?? 1,
      o.maxAttempts ?? 3,
      o.deadlineS ?? 3600,
    ],
  )
  return rows[0]!.v
}

test('a retry due exactly at its expiresAt expires; one due a moment before is retried', async () => {
  expect(await verdict({ delayS: 10, expiresInS: 10 })).toBe('expired')
  expect(await verdict({ delayS: 10, expiresInS: 10.5 })).toBe('retry')
})

test('an uncounted wait whose run reaches the throttle deadline exactly is throttled out', async () => {
  expect(await verdict({ refund: true, sinceS: -3600, deadlineS: 3600 })).toBe('throttled_out')
  expect(await verdict({ refund: true, sinceS: -3599.5, deadlineS: 3600 })).toBe('retry')
})

test('a retry past its expiresAt expires, whatever else holds: out of attempts, or throttled out', async () => {
  expect(await verdict({ expiresInS: 1, attemptsAfter: 3, maxAttempts: 3 })).toBe('expired')
  expect(await verdict({ refund: true, sinceS: -7200, deadlineS: 3600, expiresInS: 1 })).toBe(
    'expired',
  )
  // Not expiring: throttled out before exhausted, and exhausted at the last attempt.
  expect(await verdict({ refund: true, sinceS: -7200, deadlineS: 3600, attemptsAfter: 3 })).toBe(
    'throttled_out',
  )
  expect(await verdict({ attemptsAfter: 3, maxAttempts: 3 })).toBe('exhausted')
  expect(await verdict({ attemptsAfter: 2, maxAttempts: 3 })).toBe('retry')
})

test('other kinds pass through', async () => {
  const { rows } = await t.pool.query<{ k: string; v: string }>(
    `select k, mailer.settle_verdict(k, false, 0, null, now() - interval '1 second', 9, 3, 1) as v
       from unnest(array['sent', 'failed', 'released', 'expired', 'cancelled']) k`,
  )
  expect(rows.map((r) => r.v)).toEqual(rows.map((r) => r.k))
})

test('a row without maxAttempts of its own is out of attempts at the worker’s MAX_ATTEMPTS', async () => {
  const id = await enqueue(t)
  const retry = {
    kind: 'retry' as const,
    code: 'server_error',
    message: 'HTTP 500',
    delayMs: 0,
    throttled: false,
    ambiguous: false,
  }
  const p = { workerId: 'w1', defaultMaxAttempts: 2, throttleDeadlineSeconds: 86_400 }
  const outcomes: string[] = []
  for (let i = 0; i < 2; i++) {
    const { leases } = await claimBatch(t.db, {
      limit: 1,
      workerId: 'w1',
      leaseSeconds: 30,
      defaultMaxAttempts: 2,
    })
    const [r] = await settleLeases(
      t.db,
      [{ id, token: leases[0]!.token, settlement: retry, startedAt: null }],
      p,
    )
    outcomes.push(r!.outcome)
  }
  expect(outcomes).toEqual(['retry', 'failed'])
  expect(await rowOf(t, id)).toMatchObject({ status: 'failed', attempts: 2, max_attempts: null })
})
