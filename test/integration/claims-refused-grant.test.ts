// A service role without one of the deploy guide's step 7 grants: its claims fail with 42501, and readiness says which grants to run, not only the SQLSTATE.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { CLAIMS_FAILING_MS } from '../../src/outbox/failing-claims-problem.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const role = `claims_svc_${process.pid}`
// Generated per run: no fixed password in the repository.
const password = `pw-${randomBytes(12).toString('hex')}`
let engine: TestEngine | null = null

afterEach(async () => {
  await engine?.stop()
  engine = null
})

test('claims refused a privilege make readiness name the grants to run, after the 30 s it waits', async () => {
  await t.createRole(role, `login password '${password}'`)
  // Step 7's grants but UPDATE, as a DBA who left one out.
  await t.pool.query(`
    grant usage on schema mailer to ${role};
    grant select, insert, delete on all tables in schema mailer to ${role};`)
  const url = new URL(t.url)
  url.username = role
  url.password = password
  const handle = openDb({ name: 'svc', url: url.toString(), log: silentLogger })
  try {
    engine = createTestEngine(t, { handle })
    await engine.start()
    await enqueue(t)
    await engine.events.waitFor((x) => x.type === 'loop_error' && x.where === 'claim')
    const failing = engine.drainer.status().claimsFailing
    expect(failing).toMatchObject({ sqlstate: '42501' })
    const drainer = engine.drainer
    // Its record aged as 35 s of failing would have made it.
    const monitor = createHealthMonitor({
      databases: [
        {
          name: 'svc',
          statements: t.pool,
          drainer: {
            ...drainer,
            status: () => ({
              ...drainer.status(),
              claimsFailing: { ...failing!, forMs: CLAIMS_FAILING_MS + 5_000, lastAgoMs: 1_000 },
            }),
          },
          listener: null,
        },
      ],
      schemaCurrent: ['svc'],
      probeTimeoutMs: 20_000,
      wedgedAfterMs: 120_000,
    })
    const [report] = await monitor.readiness()
    expect(report!.problem).toBe(
      "claims have failed for 35s (SQLSTATE 42501): the role in the database's URL lacks a privilege on schema mailer: as the schema's owner, run the deploy guide's step 7 grants for it (`outbox-mailer check-config --connect` names what it lacks); see the logs",
    )
  } finally {
    await engine?.stop()
    engine = null
    await handle.close()
  }
})
