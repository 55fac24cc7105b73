// Readiness when the claims keep failing behind a lock on mailer.email_outbox (a hand session's LOCK TABLE, an ALTER TABLE queued behind a transaction left open): the lock and the session to end named.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import type { Drainer } from '../../src/outbox/drainer.ts'
import { CLAIMS_FAILING_MS } from '../../src/outbox/failing-claims-problem.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { appOnDefault, send } from '../api/support/harness.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { createTestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { type HandLock, holdHandLock } from '../support/hand-lock.ts'
import { testPool } from '../support/test-pool.ts'

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
      claimsFailing: {
        since: 0,
        forMs: CLAIMS_FAILING_MS + 5_000,
        lastAgoMs: 1_000,
        sqlstate,
        retrying: true,
      },
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
            `^claims have failed for 35s \\(SQLSTATE ${sqlstate}\\): a lock on mailer\\.email_outbox held by pid ${lock.pid} \\(hand-session, open \\d+ s\\) holds them: a LOCK TABLE, VACUUM FULL, ALTER TABLE or CREATE INDEX without CONCURRENTLY in a transaction left open; end it \\(pg_terminate_backend\\(pid\\)\\) or wait for it; see the logs$`,
          ),
        ),
      })
    } finally {
      await lock.release()
    }
  })
}

// A claim writes (ROW EXCLUSIVE): a SHARE lock stops it too, as a CREATE INDEX without
// CONCURRENTLY run by hand in a transaction left open holds, or LOCK TABLE … IN SHARE MODE.
for (const mode of ['share', 'share row exclusive', 'exclusive']) {
  test(`claims failing while a hand session holds mailer.email_outbox in ${mode} mode: the problem names that lock too`, async () => {
    const lock = await holdHandLock(t.url, 'mailer.email_outbox', mode)
    try {
      const [report] = await monitorOfClaimsFailing('57014').readiness()
      const problem = report?.problem ?? ''
      expect({ named: problem.includes(lock.named), problem }).toEqual({
        named: true,
        problem: expect.stringContaining('CREATE INDEX without CONCURRENTLY'),
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

// A claim behind the lock waits out the pool's statement_timeout (30 s in serve) and fails; the
// readiness windows scaled alike: unready after failing 1 s, a failure fresh for half a wait (15 s
// of 30 in serve). So a probe between a failure's freshness and the next failure meets a claim in
// flight.
const CLAIM_WAIT_MS = 3_000
const WINDOWS = { forMs: 1_000, freshMs: CLAIM_WAIT_MS / 2 }

test('a hand session holding mailer.email_outbox across several claim waits: /readyz is 503 naming it from the claims failing long enough until the lock ends, then 200', async () => {
  const pool = testPool({ connectionString: t.url, statement_timeout: CLAIM_WAIT_MS, max: 10 })
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  const engine = createTestEngine(t, { deps: { db } })
  const monitor = createHealthMonitor({
    databases: [{ name: 'default', statements: t.pool, drainer: engine.drainer, listener: null }],
    schemaCurrent: ['default'],
    probeTimeoutMs: 8_000,
    wedgedAfterMs: 120_000,
    claimsFailing: WINDOWS,
  })
  const { app } = appOnDefault(t, { health: monitor })
  const claimErrors = () =>
    engine.events.events.filter((e) => e.type === 'loop_error' && e.where === 'claim').length
  let lock: HandLock | null = null
  try {
    await engine.start()
    // Its start's reclaim done and its loop turning: what follows are claims.
    await pollUntil(async () => (engine.drainer.status().lastLoopAt !== null ? true : undefined))
    lock = await holdHandLock(t.url, 'mailer.email_outbox')
    const named = lock.named
    // Each change of what /readyz says while the lock is held, in order.
    const whileHeld: string[] = []
    const said = async () => {
      const r = await send(app, 'GET', '/readyz')
      const problem = (r.body as { databases: { problem: string | null }[] }).databases[0]?.problem
      if (r.status === 200) return 'ready'
      return problem?.includes(named) ? '503 naming the lock' : `${r.status}: ${problem}`
    }
    engine.drainer.wake()
    // From the first 503, two more claims' whole waits behind the lock, each ended by the server.
    let failedAtFirst: number | null = null
    await pollUntil(
      async () => {
        const now = await said()
        if (whileHeld.at(-1) !== now) whileHeld.push(now)
        if (failedAtFirst === null && now === '503 naming the lock') failedAtFirst = claimErrors()
        return failedAtFirst !== null && claimErrors() >= failedAtFirst + 2 ? true : undefined
      },
      90_000,
      100,
    )
    await lock.release()
    lock = null
    // Ready again once a claim succeeds: the one in flight as the lock ends, or the next.
    await pollUntil(async () => ((await said()) === 'ready' ? true : undefined), 30_000, 100)
    expect({ whileHeld, claimsFailing: engine.drainer.status().claimsFailing }).toEqual({
      whileHeld: ['ready', '503 naming the lock'],
      claimsFailing: null,
    })
  } finally {
    await lock?.release()
    await engine.stop()
    await db.destroy()
  }
}, 150_000)
