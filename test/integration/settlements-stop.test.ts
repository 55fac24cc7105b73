// A stop's deadline reaches both settlement queues: with the database away, neither the sends nor the other outcomes are retried past it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { monotonicNow, systemClock, waitAtMost } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import { createSettlements } from '../../src/outbox/settlements.ts'
import { databaseAway } from '../support/database-away.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('outcomes of every kind are given up once the stop’s deadline passes, not retried while the database is away', async () => {
  const db = await databaseAway()
  try {
    const settle = createSettlements({
      db,
      workerId: 'w1',
      config: { leaseSeconds: 600, maxAttempts: 3, throttleDeadlineSeconds: 86_400 },
      clock: systemClock,
      log: silentLogger,
    })
    settle.giveUpBy(monotonicNow(systemClock) + 100)
    const push = (id: string, settlement: Settlement) =>
      settle.push({ id, token: crypto.randomUUID(), settlement, startedAt: null })
    const answers = Promise.all([
      push('1', { kind: 'sent' }),
      push('2', { kind: 'failed', code: 'rejected', message: 'no' }),
      push('3', { kind: 'released' }),
    ])
    // Past the deadline every push answers null (its lease expires and is reclaimed); a queue the
    // stop did not reach retries until the database is back, here never.
    expect(await waitAtMost(systemClock, answers, 10_000)).toEqual([null, null, null])
    await waitAtMost(systemClock, settle.idle(), 1_000)
  } finally {
    await db.destroy()
  }
})
