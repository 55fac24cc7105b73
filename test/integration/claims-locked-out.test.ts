// Readiness when the claims keep failing behind a lock on mailer.email_outbox (a hand session's LOCK TABLE, an ALTER TABLE queued behind a transaction left open): the lock and the session to end named.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import type { Drainer } from '../../src/outbox/drainer.ts'
import { CLAIMS_FAILING_MS } from '../../src/outbox/failing-claims-problem.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { holdHandLock } from '../support/hand-lock.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t.drop()
})

/**
 * A worker whose claims have failed with `sqlstate` for past CLAIMS_FAILING_MS: a claim waiting
 * behind the lock ends at the pool's statement_timeout (57014), or at a role's lock_timeout (55P03).
 */
function monitorOfClaimsFailing(sqlstate: string) {
  const drainer = {
    status: () => ({
      running: true,
      lastLoopAt: Date.now(),
      loopSilentMs: 0,
      inFlight: 0,
      claimsFailing: { since: 0, forMs: CLAIMS_FAILING_MS + 5_000, lastAgoMs: 1_000, sqlstate },
    }),
  } as unknown as Drainer
  return createHealthMonitor({
    databases: [{ name: 'default', statements: t.pool, drainer, listener: null }],
    schemaCurrent: ['default'],
    probeTimeoutMs: 8_000,
    wedgedAfterMs: 120_000,
  })
}

for (const sqlstate of ['57014', '55P03']) {
  test(`claims failing (${sqlstate}) while a hand session holds mailer.email_outbox: the problem names the lock and its holder`, async () => {
    const lock = await holdHandLock(t.url, 'mailer.email_outbox')
    try {
      const [report] = await monitorOfClaimsFailing(sqlstate).readiness()
      const problem = report?.problem ?? ''
      expect({ named: problem.includes(lock.named), problem }).toEqual({
        named: true,
        problem: expect.stringMatching(
          new RegExp(
            `^claims have failed for 35s \\(SQLSTATE ${sqlstate}\\): a lock on mailer\\.email_outbox held by pid ${lock.pid} \\(hand-session, open \\d+ s\\) holds them: a LOCK TABLE, VACUUM FULL or ALTER TABLE in a transaction left open; end it \\(pg_terminate_backend\\(pid\\)\\) or wait for it; see the logs$`,
          ),
        ),
      })
    } finally {
      await lock.release()
    }
  })
}

test('claims failing with a statement timeout and no lock in the way: the problem is as before, naming none', async () => {
  const [report] = await monitorOfClaimsFailing('57014').readiness()
  expect(report?.problem).toBe('claims have failed for 35s (SQLSTATE 57014); see the logs')
})
