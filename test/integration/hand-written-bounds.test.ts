// Columns written by hand past what enqueue writes (a correlation id, a priority, a pending row's attempts, send_at): refused by the table; ones stored before 0038 mended and sent once.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { testCluster } from '../preload.ts'
import type { TestDb } from '../support/db.ts'
import { useTestDb } from '../support/db.ts'
import { allIn, createTestEngine, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const message = JSON.stringify({ to: [{ address: 'rcpt@example.com' }], subject: 'Hi', text: 'x' })
// 3,200 characters that do not compress: past the correlation index's 2,704-byte entry limit.
const LONG_ID = `(select string_agg(md5(g::text), '') from generate_series(1, 100) g)`

test('a correlation id past 200 characters is refused by the table, as enqueue_email refuses it', async () => {
  const refused = (sql: string) =>
    t.pool.query(sql, [message]).then(
      () => null,
      (e: { code?: string; constraint?: string }) => [e.code, e.constraint],
    )
  const check = ['23514', 'email_outbox_correlation_id_check']
  expect(
    await refused(
      `insert into mailer.email_outbox (message, correlation_id) values ($1::jsonb, ${LONG_ID})`,
    ),
  ).toEqual(check)
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, correlation_id) values ($1::jsonb, repeat('é', 200)) returning id`,
    [message],
  )
  expect(
    await refused(
      `update mailer.email_outbox set correlation_id = ${LONG_ID} where id = ${rows[0]!.id} and $1::jsonb is not null`,
    ),
  ).toEqual(check)
})

test('a priority outside -100..100 is refused by the table, as enqueue_email and the trigger refuse it', async () => {
  const refused = (sql: string) =>
    t.pool.query(sql, [message]).then(
      () => null,
      (e: { code?: string; constraint?: string }) => [e.code, e.constraint],
    )
  const check = ['23514', 'email_outbox_priority_check']
  for (const p of [101, -101, 32767, -32768])
    expect([
      p,
      await refused(`insert into mailer.email_outbox (message, priority) values ($1::jsonb, ${p})`),
    ]).toEqual([p, check])
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, priority) values ($1::jsonb, -100), ($1::jsonb, 100) returning id`,
    [message],
  )
  expect(
    await refused(
      `update mailer.email_outbox set priority = 1000 where id = ${rows[0]!.id} and $1::jsonb is not null`,
    ),
  ).toEqual(check)
})

test('a pending row at the largest attempts count is refused: its claim, attempts + 1, failed every claim of the outbox', async () => {
  const refused = (sql: string) =>
    t.pool.query(sql, [message]).then(
      () => null,
      (e: { code?: string; constraint?: string }) => [e.code, e.constraint],
    )
  expect(
    await refused(
      `insert into mailer.email_outbox (message, attempts) values ($1::jsonb, 2147483647)`,
    ),
  ).toEqual(['23514', 'email_outbox_attempts_check'])
  // One below is claimed (to attempt 2^31 - 1, over any max_attempts: sent once, failed on a retry).
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, attempts) values ($1::jsonb, 2147483646) returning id`,
    [message],
  )
  await t.pool.query(`insert into mailer.email_outbox (message) values ($1::jsonb)`, [message])
  const e = createTestEngine(t)
  try {
    await e.start()
    await allIn(t, 'sent', 2)
  } finally {
    await e.stop()
  }
  expect(
    (await t.pool.query(`select attempts from mailer.email_outbox where id = $1`, [rows[0]!.id]))
      .rows,
  ).toEqual([{ attempts: 2147483647 }])
})

test('an infinite send_at is refused: on Postgres 16 and older its claim and the oldest-row age failed ("cannot subtract infinite timestamps")', async () => {
  const refused = (sql: string) =>
    t.pool.query(sql, [message]).then(
      () => null,
      (e: { code?: string; constraint?: string }) => [e.code, e.constraint],
    )
  for (const at of ['infinity', '-infinity'])
    expect([
      at,
      await refused(
        `insert into mailer.email_outbox (message, send_at) values ($1::jsonb, '${at}')`,
      ),
    ]).toEqual([at, ['23514', 'email_outbox_send_at_check']])
})

let other: TestDb | null = null
let engine: TestEngine | null = null
beforeAll(async () => {
  const cluster = await testCluster()
  const name = `outbox_c_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await adminQuery(cluster.admin, `create database ${name}`)
  const url = cluster.url(name)
  const handle = openDb({ name: 'test', url, log: silentLogger, maxConnections: 20 })
  other = {
    ...handle,
    url,
    reset: async () => {},
    createRole: () => Promise.reject(new Error('no role is made beside this database')),
    drop: async () => {
      await handle.close()
      await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`)
    },
  }
})
afterAll(async () => {
  await engine?.stop()
  await other?.drop()
})

test('rows stored before 0038 with them are kept (the correlation id dropped, the priority, attempts and send_at brought within bounds) and sent once', async () => {
  const o = other!
  const before = migrations.filter((m) => m.version < 38)
  await migrate({ url: o.url, log: silentLogger, migrations: before })
  // Claimed in this order: the priorities stay in their order, now -100, 0, 100.
  const { rows } = await o.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, correlation_id, priority, attempts, send_at)
     select $1::jsonb, c, p, a, s::timestamptz
       from (values (${LONG_ID}, 0, 0, 'now'), ('order-1', 30000, 0, 'now'), (null, -30000, 0, 'now'),
                    (null, 50, 2147483647, '-infinity'), (null, 0, 0, 'infinity')) v(c, p, a, s)
     returning id`,
    [message],
  )
  await migrate({ url: o.url, log: silentLogger })
  engine = createTestEngine(o)
  await engine.start()
  // Sent once each and settled: the settlement of a batch holding the long id failed as a whole,
  // and the reclaim sent every row of it again, lease after lease.
  const settled = await pollUntil(async () => {
    const r = await o.pool.query(
      `select id::text, status, correlation_id, priority, attempts, send_at = '9999-12-31 23:59:59+00' as never
         from mailer.email_outbox order by id`,
    )
    return r.rows.slice(0, 4).every((x) => x.status === 'sent') ? r.rows : undefined
  }).catch(
    async () => (await o.pool.query(`select id::text, status from mailer.email_outbox`)).rows,
  )
  expect(settled).toEqual(
    rows.map((r, i) => ({
      id: r.id,
      status: i < 4 ? 'sent' : 'pending',
      correlation_id: [null, 'order-1', null, null, null][i],
      priority: [0, 100, -100, 50, 0][i],
      attempts: [1, 1, 1, 2147483647, 0][i],
      never: i === 4,
    })),
  )
  expect(engine.sender.calls.map((c) => c.outboxId)).toEqual([
    rows[2]!.id,
    rows[0]!.id,
    rows[3]!.id,
    rows[1]!.id,
  ])
})
