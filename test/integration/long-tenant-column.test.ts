// A trigger's tenantColumn holding more than 200 characters: stored shortened, so the deploy guide's tenant index settles its batch, each row sent once.
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { silentLogger } from '../../src/log.ts'
import { testCluster } from '../preload.ts'
import { useTestDb } from '../support/db.ts'
import { allIn, createTestEngine, type TestEngine } from '../support/engine.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

beforeEach(async () => {
  await t.pool.query(`
    drop table if exists public.orders;
    create table public.orders (id bigint generated always as identity primary key, name text, org text);
    insert into mailer.templates (name, subject, text_body, to_addresses)
    values ('order', 'Order {{id}}', 'x', array['desk@example.com']);
    create trigger orders_mail after insert on public.orders for each row
      execute function mailer.enqueue_from_row('order', '{"tenantColumn": "org"}');`)
})

test('three rows claimed together, one with a 3,840-character tenant, with the tenant index: each sent once', async () => {
  // deploy/README.md step 7's optional index: an entry past about 2.7 kB is refused, here when
  // the row is settled. Its settlement failed, and with it the batch's: the other rows were sent
  // again at every lease's end, the long one never left `sending`.
  await t.pool.query(`
    create index email_outbox_finished_tenant_idx on mailer.email_outbox (tenant, status)
      where status in ('sent', 'failed', 'cancelled')`)
  // Hex of random bytes: incompressible, so the index cannot squeeze it under its limit.
  const { rows: made } = await t.pool.query<{ org: string }>(
    `select string_agg(md5(random()::text), '') as org from generate_series(1, 120)`,
  )
  const long = made[0]!.org
  await t.pool.query(
    `insert into public.orders (name, org) values ('a', 'acme'), ('b', $1), ('c', 'acme')`,
    [long],
  )
  const { rows } = await t.pool.query<{ id: string; tenant: string }>(
    'select id, tenant from mailer.email_outbox order by id',
  )
  const sha = createHash('sha256').update(long).digest('hex')
  expect(rows.map((r) => r.tenant)).toEqual(['acme', `${long.slice(0, 130)}…${sha}`, 'acme'])
  engine = createTestEngine(t)
  await engine.start()
  await allIn(t, 'sent', 3)
  expect(engine.sender.calls.map((c) => c.outboxId).sort()).toEqual(rows.map((r) => r.id))
})

test('a tenant of 200 characters is kept whole; the table refuses a longer one written by hand', async () => {
  const two100 = 'x'.repeat(200)
  await t.pool.query(`insert into public.orders (name, org) values ('a', $1)`, [two100])
  const { rows } = await t.pool.query('select tenant from mailer.email_outbox')
  expect(rows).toEqual([{ tenant: two100 }])
  await expect(
    t.pool.query(
      `insert into mailer.email_outbox (tenant, message) values (repeat('y', 201), '{"to": [], "subject": "x"}')`,
    ),
  ).rejects.toMatchObject({ code: '23514', constraint: 'email_outbox_tenant_check' })
})

test('a row stored before 0050 with a longer tenant gets the shortened one, and the check is validated', async () => {
  const cluster = await testCluster()
  const name = `outbox_lt_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await adminQuery(cluster.admin, `create database ${name}`)
  try {
    const url = cluster.url(name)
    const before = migrations.filter((m) => m.version < 50)
    await migrate({ url, log: silentLogger, migrations: before })
    const long = 'z'.repeat(250)
    await adminQuery(
      url,
      `insert into mailer.email_outbox (tenant, message) values ($1, '{"to": [], "subject": "x"}'), ('acme', '{"to": [], "subject": "x"}')`,
      [long],
    )
    await migrate({ url, log: silentLogger })
    const { rows } = await adminQuery(
      url,
      `select tenant, (select convalidated from pg_constraint where conname = 'email_outbox_tenant_check') as validated
         from mailer.email_outbox order by id`,
    )
    const sha = createHash('sha256').update(long).digest('hex')
    expect(rows).toEqual([
      { tenant: `${long.slice(0, 130)}…${sha}`, validated: true },
      { tenant: 'acme', validated: true },
    ])
  } finally {
    await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`)
  }
})
