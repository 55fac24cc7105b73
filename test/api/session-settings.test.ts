// The API's timestamps whatever the database's DateStyle, IntervalStyle and TimeZone (set on the role or database).
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { readDatabaseStatus } from '../../src/status/database-status.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { startTransactionPooler } from '../support/transaction-pooler.ts'
import { type App, appOnDefault, enqueueSql, send, setState } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
let handle: DbHandle
let app: App
let tk: string

beforeAll(async () => {
  t = await createTestDb()
  const name = (await t.pool.query<{ db: string }>('select current_database() as db')).rows[0]!.db
  // Settings a DBA may give a shared database: day before month, SQL-style intervals, a zone 12:45
  // ahead of UTC. The app's pool connects after them, so each of its sessions starts with them.
  for (const setting of [
    `datestyle = 'SQL, DMY'`,
    `intervalstyle = 'sql_standard'`,
    `timezone = 'Pacific/Chatham'`,
  ])
    await t.pool.query(`alter database ${name} set ${setting}`)
  handle = openDb({ name: 'default', url: t.url, log: silentLogger })
  app = appOnDefault(handle).app
  tk = await token()
})

afterAll(async () => {
  await handle?.close()
  await t?.drop()
})

test('a session of the database starts with its settings (or this file tests nothing)', async () => {
  // The test's own pool may have opened its connection before the alter: ask a new session.
  const plain = new pg.Client({ connectionString: t.url })
  await plain.connect()
  try {
    const { rows } = await plain.query<{ style: string }>(
      "select current_setting('datestyle') as style",
    )
    expect(rows[0]!.style).toBe('SQL, DMY')
  } finally {
    await plain.end()
  }
})

test('the list and one row answer 200 with ISO instants equal to the stored ones', async () => {
  const id = await enqueueSql(t.pool)
  await setState(t.pool, id, 'sent')
  await t.pool.query(
    `update mailer.email_outbox set created_at = '2030-01-02T03:04:05.678Z', sent_at = '2030-01-02T03:04:06.5Z' where id = $1`,
    [id],
  )
  const list = await send(app, 'GET', '/v1/outbox', { token: tk })
  expect(list.status).toBe(200)
  const [item] = (list.body as { items: Record<string, unknown>[] }).items
  expect([item?.createdAt, item?.sentAt]).toEqual([
    '2030-01-02T03:04:05.678Z',
    '2030-01-02T03:04:06.500Z',
  ])
  const one = await send(app, 'GET', `/v1/outbox/${id}`, { token: tk })
  expect(one.status).toBe(200)
  const row = one.body as Record<string, unknown>
  expect([row.createdAt, row.sentAt]).toEqual([
    '2030-01-02T03:04:05.678Z',
    '2030-01-02T03:04:06.500Z',
  ])
})

test('stats and metrics answer 200', async () => {
  await enqueueSql(t.pool)
  const stats = await send(app, 'GET', '/v1/stats', { token: tk })
  expect(stats.status).toBe(200)
  const metrics = await send(app, 'GET', '/metrics')
  expect(metrics.status).toBe(200)
})

test('behind a transaction pooler too, which lets the startup parameter through', async () => {
  const pooler = await startTransactionPooler(t.url)
  const pooled = openDb({ name: 'default', url: pooler.url, log: silentLogger })
  try {
    const id = await enqueueSql(t.pool)
    const one = await send(appOnDefault(pooled).app, 'GET', `/v1/outbox/${id}`, { token: tk })
    expect(one.status).toBe(200)
  } finally {
    await pooled.close()
    await pooler.close()
  }
})

test('`status` reads every section: ages come as epochs, not as text timestamps', async () => {
  const id = await enqueueSql(t.pool)
  await setState(t.pool, id, 'failed')
  await enqueueSql(t.pool, { sendAt: '2000-01-01T00:00:00Z' })
  const reading = await readDatabaseStatus(
    { name: 'default', url: t.url, listenUrl: t.url },
    { timeoutMs: 10_000, leaseSeconds: 30, mailboxRatePerMinute: 0 },
  )
  expect([reading.error, reading.unread]).toEqual([null, []])
  expect(reading.stats?.oldestPendingAgeSeconds).toBeGreaterThan(20 * 365 * 86_400)
  expect(reading.failures).not.toBeNull()
})
