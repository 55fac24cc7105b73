// /readyz while a lock blocks its schema check (a hand session's LOCK TABLE, a VACUUM FULL): the database answered, and the session in the way is named; the probe is bounded and leaves no setting behind.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { holdHandLock } from '../support/hand-lock.ts'
import { untilLockWaits } from '../support/lock-waits.ts'
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

test('an exclusive lock on mailer.schema_migrations held by a hand session: the problem names the lock and its holder, not an unreachable database', async () => {
  const lock = await holdHandLock(t.url, 'mailer.schema_migrations')
  // One connection, so that what the probe left on it is what the next statement sees.
  const pool = testPool({ connectionString: t.url, max: 1 })
  try {
    const monitor = createHealthMonitor({
      databases: [{ name: 'default', statements: pool, drainer: null, listener: null }],
      wedgedAfterMs: 60_000,
      // A loaded machine's answer within the bound; the lock is held past it.
      probeTimeoutMs: 8_000,
    })
    const [report] = await monitor.readiness()
    // A probe statement left waiting for the lock holds the connection (the worker's, in serve).
    const lockTimeout = await Promise.race([
      pool
        .query<{ v: string }>("select current_setting('lock_timeout') as v")
        .then((r) => r.rows[0]!.v),
      Bun.sleep(10_000).then(() => 'no answer: the connection still waits behind the lock'),
    ])
    expect({
      reachable: report!.reachable,
      named: report!.problem?.includes(lock.named),
      problem: report!.problem,
      lockTimeout,
    }).toEqual({ reachable: true, named: true, problem: report!.problem, lockTimeout: '0' })
  } finally {
    await lock.release()
    await pool.end().catch(() => {})
  }
})

test('an ALTER TABLE queued for the lock behind a transaction left open: the problem names both, the queued one and the one it waits behind', async () => {
  const holder = new pg.Client({ connectionString: t.url, application_name: 'report-job' })
  const alter = new pg.Client({ connectionString: t.url, application_name: 'hand-alter' })
  await holder.connect()
  await alter.connect()
  const pool = testPool({ connectionString: t.url, max: 1 })
  let altered: Promise<unknown> | undefined
  try {
    const pidOf = async (c: pg.Client) =>
      (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    const [holderPid, alterPid] = [await pidOf(holder), await pidOf(alter)]
    await holder.query('begin')
    await holder.query('select count(*) from mailer.schema_migrations')
    // In a transaction rolled back at the end: once the holder ends, it runs and is undone.
    await alter.query('begin')
    altered = alter.query('alter table mailer.schema_migrations add column ready_probe int')
    altered.catch(() => {})
    await untilLockWaits(t.pool)
    const monitor = createHealthMonitor({
      databases: [{ name: 'default', statements: pool, drainer: null, listener: null }],
      wedgedAfterMs: 60_000,
      probeTimeoutMs: 8_000,
    })
    const [report] = await monitor.readiness()
    const named = `a lock on mailer.schema_migrations queued by pid ${alterPid} (hand-alter, open `
    const behind = `behind pid ${holderPid}`
    expect({
      reachable: report!.reachable,
      named: report!.problem?.includes(named),
      behind: report!.problem?.includes(behind),
      problem: report!.problem,
    }).toEqual({ reachable: true, named: true, behind: true, problem: report!.problem })
  } finally {
    await holder.query('rollback').catch(() => {})
    await altered?.catch(() => {})
    await alter.query('rollback').catch(() => {})
    await holder.end()
    await alter.end()
    await pool.end().catch(() => {})
  }
})
