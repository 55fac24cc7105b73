// A pool a test opens on its own (testPool): its idle connections ended by a drop or a terminate raise nothing, and its end() waits for the server's close.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createTestDb, useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { startGoodbyeHoldingProxy } from '../support/goodbye-holding-proxy.ts'
import { testPool } from '../support/test-pool.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

test('ended, its goodbye not yet read by the server when the database is dropped (57P01 on the connection): nothing is thrown, and its end resolves', async () => {
  // Round 51's CI: heartbeat-plan's pool, ended, met useTestDb's drop right after.
  const db = await createTestDb()
  const proxy = await startGoodbyeHoldingProxy(db.url)
  try {
    const pool = testPool({ connectionString: proxy.url, max: 1 })
    await pool.query('select 1')
    const serverClosed = new Promise<void>((resolve) => proxy.onServerClose(resolve))
    proxy.hold()
    const ended = pool.end()
    await db.drop()
    // The drop ended the session (its FATAL reached the pool), and the pool's end is done.
    await Promise.all([serverClosed, ended])
    expect(pool.totalCount).toBe(0)
  } finally {
    proxy.close()
    // Again, if the test failed before its own (a no-op otherwise).
    await db.drop()
  }
})

test('end() resolves once the server closed its connections, not when it sent them its goodbye', async () => {
  const proxy = await startGoodbyeHoldingProxy(t.url)
  try {
    const pool = testPool({ connectionString: proxy.url, max: 2 })
    await Promise.all([pool.query('select pg_sleep(0.01)'), pool.query('select 1')])
    const order: string[] = []
    proxy.onServerClose(() => order.push('server closed'))
    proxy.hold()
    const ended = pool.end().then(() => order.push('end resolved'))
    proxy.release()
    await ended
    expect(order).toEqual(['server closed', 'server closed', 'end resolved'])
  } finally {
    proxy.close()
  }
})

test('an idle connection terminated (57P01) throws nothing; the next statement opens another', async () => {
  const pool = testPool({ connectionString: t.url, max: 1, application_name: 'test-pool-idle' })
  try {
    const first = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    await t.pool.query('select pg_terminate_backend($1)', [first])
    await pollUntil(async () => (pool.totalCount === 0 ? true : undefined))
    const next = (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    expect(next).not.toBe(first)
  } finally {
    await pool.end()
  }
})
