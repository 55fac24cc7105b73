// The API's timestamps whatever the database's DateStyle, IntervalStyle and TimeZone (set on the role or database).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { checkDatabase } from '../../src/check-config/database-check.ts'
import type { Config, ServeRole } from '../../src/config.ts'
import { migrate } from '../../src/db/migrate.ts'
import { MIGRATE_APPLICATION_NAME } from '../../src/db/migration-lock.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { newListenClient } from '../../src/outbox/listen-session.ts'
import { readDatabaseStatus } from '../../src/status/database-status.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import {
  type SessionStartRecorder,
  startSessionStartRecorder,
} from '../support/session-start-recorder.ts'
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

test("timestamps out of a Date's range (hand-written ±infinity, a year past 275760) answer 200 as the last or first instant a date-time writes (years 0001–9999), not a 500", async () => {
  const id = await enqueueSql(t.pool)
  await setState(t.pool, id, 'sent')
  await t.pool.query(
    `update mailer.email_outbox
        set expires_at = 'infinity', sent_at = '290000-01-01', cancel_requested_at = '-infinity'
      where id = $1`,
    [id],
  )
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, started_at, finished_at, outcome)
     values ($1, 1, '-infinity', 'infinity', 'sent')`,
    [id],
  )
  const [latest, earliest] = ['9999-12-31T23:59:59.999Z', '0001-01-01T00:00:00.000Z']
  const list = await send(app, 'GET', `/v1/outbox?status=sent`, { token: tk })
  const item = (list.body as { items?: Record<string, unknown>[] }).items?.find((i) => i.id === id)
  expect([list.status, item?.expiresAt, item?.sentAt, item?.cancelRequestedAt]).toEqual([
    200,
    latest,
    latest,
    earliest,
  ])
  const one = await send(app, 'GET', `/v1/outbox/${id}`, { token: tk })
  const row = one.body as { history?: Record<string, unknown>[] } & Record<string, unknown>
  expect([
    one.status,
    row.expiresAt,
    row.history?.[0]?.startedAt,
    row.history?.[0]?.finishedAt,
  ]).toEqual([200, latest, earliest, latest])
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
    { timeoutMs: 10_000, leaseSeconds: 30 },
  )
  expect([reading.error, reading.unread]).toEqual([null, []])
  expect(reading.stats?.oldestPendingAgeSeconds).toBeGreaterThan(20 * 365 * 86_400)
  expect(reading.failures).not.toBeNull()
})

describe('every connection of ours starts with DateStyle ISO, whatever the database says', () => {
  // A proxy in front of the database notes the DateStyle the server reports to each session it
  // starts, by application_name: on every Postgres version (a login event trigger would need 17+).
  // The one-shot pools of `status` and `check-config` are internal to them, and close before they
  // return.
  let recorder: SessionStartRecorder
  beforeAll(async () => {
    recorder = await startSessionStartRecorder(t.url)
  })
  afterAll(async () => {
    await recorder?.close()
  })
  const stylesOf = (app: string) => recorder.starts(app).map((s) => s.dateStyle)
  const notIso = (styles: (string | null)[]) => styles.filter((s) => !s?.startsWith('ISO,'))

  test("the proxy notes the database's DateStyle for a session that asks for none (or these test nothing)", async () => {
    const plain = new pg.Client({ connectionString: recorder.url, application_name: 'plain' })
    await plain.connect()
    await plain.end()
    expect(stylesOf('plain')).toEqual(['SQL, DMY'])
  })

  test('the LISTEN session on a URL of its own', async () => {
    const { client } = newListenClient({
      db: 'default',
      url: t.url,
      log: silentLogger,
      wake: () => {},
    })
    await client.connect()
    try {
      const { rows } = await client.query<{ DateStyle: string }>('show datestyle')
      expect(rows[0]!.DateStyle).toMatch(/^ISO,/)
    } finally {
      await client.end()
    }
  })

  test("`status`'s pool", async () => {
    const reading = await readDatabaseStatus(
      { name: 'default', url: recorder.url, listenUrl: recorder.url },
      { timeoutMs: 10_000, leaseSeconds: 30 },
    )
    expect(reading.error).toBeNull()
    const styles = stylesOf('outbox-mailer:status')
    expect(styles.length).toBeGreaterThan(0)
    expect(notIso(styles)).toEqual([])
  })

  /** The styles of the sessions check-config opens to check the one URL for `role` (which finds no problem). */
  const checkConfigStyles = async (role: ServeRole, listenMode: 'auto' | 'poll') => {
    const d = { name: 'default', url: recorder.url, listenUrl: recorder.url, listed: false }
    const config = { databases: [d], worker: { listenMode } } as unknown as Config
    const before = stylesOf('outbox-mailer:check-config').length
    const found = await checkDatabase(d as Config['databases'][number], config, role, 10_000)
    expect(found.problems).toEqual([])
    return stylesOf('outbox-mailer:check-config').slice(before)
  }

  test("`check-config`'s pool", async () => {
    // The API role: no LISTEN check, the pool's session alone.
    const styles = await checkConfigStyles('api', 'poll')
    expect(styles).toHaveLength(1)
    expect(notIso(styles)).toEqual([])
  })

  test("`check-config`'s LISTEN check and the probe's second session", async () => {
    // A worker that listens: the pool's session, the LISTEN session, the probe's.
    const styles = await checkConfigStyles('worker', 'auto')
    expect(styles).toHaveLength(3)
    expect(notIso(styles)).toEqual([])
  })

  test("`migrate`'s session and its probe's", async () => {
    // Nothing to apply: the sessions it opens are the point (a migration that turns a timestamp
    // into text would store their DateStyle's).
    expect((await migrate({ url: recorder.url, log: silentLogger })).applied).toEqual([])
    const styles = stylesOf(MIGRATE_APPLICATION_NAME)
    expect(styles).toHaveLength(2)
    expect(notIso(styles)).toEqual([])
  })
})
