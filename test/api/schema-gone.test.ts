// /v1 over a database whose mailer schema, a function of it, or a privilege on it is gone, or that takes no writes: said so.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { adminQuery } from '../support/postgres.ts'
import { appOnDefault, buildApp, type Db, enqueueSql, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const message = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' }
const filter = { filter: { ids: ['1'] }, dryRun: false }

/** Every /v1 operation, on row 1. */
const requests: [string, string, unknown?][] = [
  ['GET', '/v1/outbox'],
  ['POST', '/v1/outbox', { message }],
  ['GET', '/v1/outbox/1'],
  ['POST', '/v1/outbox/1/cancel'],
  ['POST', '/v1/outbox/1/retry'],
  ['POST', '/v1/outbox/cancel', filter],
  ['POST', '/v1/outbox/retry', filter],
  ['GET', '/v1/stats'],
]

let opened: { t: TestDb; close?: () => Promise<void> }[] = []
afterEach(async () => {
  for (const o of opened) {
    await o.close?.()
    await o.t.drop()
  }
  opened = []
})

async function database() {
  const t = await createTestDb()
  opened.push({ t })
  await enqueueSql(t.pool)
  return t
}

async function answers(db: Db, only?: string) {
  const { app } = buildApp([db])
  const tk = await token()
  const out: unknown[] = []
  for (const [method, url, body] of requests) {
    if (only && `${method} ${url}` !== only) continue
    const r = await send(app, method, url, { token: tk, body })
    const p = r.body as { type?: string; detail?: string }
    out.push([method, url, r.status, p.type, p.detail])
  }
  return out
}

const expectAll = (got: unknown[], status: number, type: string, detail: unknown) =>
  expect(got).toEqual(
    requests.map(([m, u]) => [m, u, status, `urn:outbox-mailer:problem:${type}`, detail]),
  )

describe('a missing schema is 503 schema_missing, telling the operator to migrate', () => {
  const detail = expect.stringContaining('outbox-mailer migrate')

  test('the mailer schema dropped (undefined_table, invalid_schema_name)', async () => {
    const t = await database()
    await adminQuery(t.url, 'drop schema mailer cascade')
    expectAll(await answers(t), 503, 'schema_missing', detail)
  })

  test('a function of it dropped (undefined_function)', async () => {
    const t = await database()
    await adminQuery(t.url, 'drop function mailer.enqueue_email(jsonb, jsonb)')
    expect(await answers(t, 'POST /v1/outbox')).toEqual([
      ['POST', '/v1/outbox', 503, 'urn:outbox-mailer:problem:schema_missing', detail],
    ])
  })

  test('a function of it gone, told by a server whose lc_messages is Japanese (no blank before the name)', async () => {
    const t = await database()
    // The message as Postgres 15's ja catalogue words 42883 ("関数%sは存在しません"): raised as the
    // server raises it, since this machine has no Japanese locale for lc_messages to take.
    await adminQuery(
      t.url,
      `create or replace function mailer.enqueue_email(message jsonb, options jsonb default '{}')
         returns bigint language plpgsql as $$ begin
           raise exception '関数mailer.normalize_message(jsonb)は存在しません' using errcode = 'undefined_function';
         end $$`,
    )
    expect(await answers(t, 'POST /v1/outbox')).toEqual([
      ['POST', '/v1/outbox', 503, 'urn:outbox-mailer:problem:schema_missing', detail],
    ])
  })

  test('a function of it that another of it calls dropped (undefined_function inside ours)', async () => {
    const t = await database()
    await adminQuery(t.url, 'drop function mailer.normalize_recipients(jsonb, text)')
    expect(await answers(t, 'POST /v1/outbox')).toEqual([
      ['POST', '/v1/outbox', 503, 'urn:outbox-mailer:problem:schema_missing', detail],
    ])
  })
})

describe('an undefined function or operator that is not ours in mailer is a bug: 500 internal, not schema_missing', () => {
  // enqueue_email replaced by one whose statement fails with undefined_function (42883) as a plain
  // SQL bug does: migrate would change nothing, so no operator is told to run it.
  const bugs: [string, string][] = [
    ['a function of no schema of ours', 'return public.no_such_function(message)'],
    ['a function of ours called unqualified', 'return enqueue_email(message, options)'],
    ['an operator no type has', "return (1 = 'one'::text)::int"],
  ]
  for (const [name, statement] of bugs) {
    test(name, async () => {
      const t = await database()
      await adminQuery(
        t.url,
        `create or replace function mailer.enqueue_email(message jsonb, options jsonb default '{}')
           returns bigint language plpgsql as $$ begin ${statement}; end $$`,
      )
      expect(await answers(t, 'POST /v1/outbox')).toEqual([
        [
          'POST',
          '/v1/outbox',
          500,
          'urn:outbox-mailer:problem:internal',
          'internal error; quote the request id',
        ],
      ])
    })
  }
})

test('a privilege revoked from the role is 503 database_permission_denied, naming no SQL', async () => {
  const t = await database()
  const role = `outbox_r_${process.pid}`
  await t.createRole(role, `login password 'pw'`)
  // Everything but the schema itself: usage of it is the privilege missing.
  await adminQuery(
    t.url,
    `grant all on all tables in schema mailer to ${role};
     grant all on all sequences in schema mailer to ${role};
     grant execute on all functions in schema mailer to ${role}`,
  )
  const url = new URL(t.url)
  url.username = role
  url.password = 'pw'
  const h = openDb({ name: 'default', url: url.toString(), log: silentLogger })
  opened.push({
    t,
    close: () => h.close(),
  })
  const got = await answers({ name: 'default', db: h.db, pool: h.pool })
  expectAll(got, 503, 'database_permission_denied', expect.stringContaining('privilege'))
  for (const [, , , , d] of got as string[][]) expect(d).not.toMatch(/mailer\.|select|insert/i)
})

test('a database that takes no writes (a standby, a failover under way) is 503 database_unavailable for writes; reads go on', async () => {
  const t = await database()
  const name = new URL(t.url).pathname.slice(1)
  // New sessions start read-only, as on a demoted primary or a hot standby: writes raise 25006.
  await adminQuery(t.url, `alter database "${name}" set default_transaction_read_only = on`)
  const h = openDb({ name: 'default', url: t.url, log: silentLogger })
  opened.push({ t, close: () => h.close() })
  const got = await answers({ name: 'default', db: h.db, pool: h.pool })
  // The bulk retry's filter matches no failed row (row 1 is pending): it writes nothing.
  const reads = ['GET /v1/outbox', 'GET /v1/outbox/1', 'GET /v1/stats', 'POST /v1/outbox/retry']
  for (const [method, url, status, type, detail] of got as [
    string,
    string,
    number,
    string,
    string,
  ][]) {
    if (reads.includes(`${method} ${url}`))
      expect([method, url, status]).toEqual([method, url, 200])
    else
      expect([method, url, status, type, detail]).toEqual([
        method,
        url,
        503,
        'urn:outbox-mailer:problem:database_unavailable',
        expect.stringContaining('read-only'),
      ])
  }
  // A failover takes seconds: the refused write says when to repeat it (declared in the document).
  const { app } = appOnDefault(h)
  const refused = await send(app, 'POST', '/v1/outbox', { token: await token(), body: { message } })
  expect([refused.status, refused.headers.get('retry-after')]).toEqual([503, '5'])
})
