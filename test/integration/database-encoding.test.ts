// A database whose encoding is not UTF8, migrated by an older release: warned of by check-config --connect, serve's start and /readyz, not refused; a request value it cannot hold refused in words of its own.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { checkConfig } from '../../src/check-config.ts'
import { migrate } from '../../src/db/migrate.ts'
import { checksumOf } from '../../src/db/migration-plan.ts'
import { migrations } from '../../src/db/migrations.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { checkSchemas } from '../../src/schema-check-at-start.ts'
import { appOnDefault, send } from '../api/support/harness.ts'
import { token } from '../api/support/tokens.ts'
import { testCluster } from '../preload.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const created: string[] = []
let empty: string
let migrated: string
let handle: DbHandle

async function databaseIn(encoding: string): Promise<string> {
  const cluster = await testCluster()
  const name = `outbox_enc_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await adminQuery(
    cluster.admin,
    `create database ${name} encoding '${encoding}' lc_collate 'C' lc_ctype 'C' template template0`,
  )
  created.push(name)
  return cluster.url(name)
}

/**
 * As a release before this one left it (migrate now refuses a new install in an encoding not UTF8):
 * 0001 applied and recorded, then this release's migrate, which goes on with an existing install.
 */
async function migratedByAnOlderRelease(encoding: string): Promise<string> {
  const url = await databaseIn(encoding)
  const [first] = migrations
  await adminQuery(url, first!.sql)
  await adminQuery(
    url,
    `create table mailer.schema_migrations (version integer primary key, name text not null,
       checksum text not null, applied_at timestamptz not null default now());
     insert into mailer.schema_migrations (version, name, checksum) values (${first!.version}, '${first!.name}', '${checksumOf(first!.sql)}')`,
  )
  await migrate({ url, log: silentLogger })
  return url
}

beforeAll(async () => {
  empty = await databaseIn('SQL_ASCII')
  migrated = await migratedByAnOlderRelease('SQL_ASCII')
  handle = openDb({ name: 'default', url: migrated, log: silentLogger })
})
afterAll(async () => {
  await handle?.close()
  const cluster = await testCluster()
  for (const name of created)
    await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`).catch(() => {})
})

const env = (url: string) => ({
  DATABASE_URL: url,
  MAIL_TRANSPORT: 'discard',
  API_JWT_SECRET: randomBytes(32).toString('base64url'),
})

test('check-config --connect: an empty SQL_ASCII database is a problem (migrate would refuse it), a migrated one a warning', async () => {
  const fresh = await checkConfig(env(empty), { connect: true })
  expect(fresh.problems).toEqual([
    expect.stringContaining(
      'database "default": its encoding is SQL_ASCII, and outbox-mailer needs a UTF8 database',
    ),
  ])
  expect(fresh.problems[0]).toContain('`migrate` refuses to install into it')
  const running = await checkConfig(env(migrated), { connect: true })
  expect(running.problems).toEqual([])
  expect(running.checks.filter((c) => c.includes('encoding'))).toEqual([
    expect.stringMatching(
      /^warning: database "default": the database's encoding is SQL_ASCII, not UTF8, which outbox-mailer requires: .*createdb -E UTF8 -T template0/,
    ),
  ])
})

test("serve's start warns of it and goes on; /readyz stays ready with a warning, whether the start or a probe read it", async () => {
  const lines: { level: string; msg: string; db?: string; encoding?: string }[] = []
  const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
  const start = await checkSchemas([handle], log)
  expect(start).toMatchObject({ current: ['default'], notUtf8: { default: 'SQL_ASCII' } })
  expect(lines.filter((l) => l.level === 'warn')).toEqual([
    expect.objectContaining({
      msg: expect.stringContaining("the database's encoding is SQL_ASCII, not UTF8"),
      db: 'default',
      encoding: 'SQL_ASCII',
    }),
  ])
  const database = { name: 'default', statements: handle.pool, drainer: null, listener: null }
  for (const health of [
    createHealthMonitor({ databases: [database], wedgedAfterMs: 60_000, ...start }),
    createHealthMonitor({ databases: [database], wedgedAfterMs: 60_000 }),
  ]) {
    const { app } = appOnDefault(handle, { health })
    const r = await send(app, 'GET', '/readyz')
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({
      status: 'ready',
      databases: [
        {
          ready: true,
          problem: null,
          warning: expect.stringContaining("the database's encoding is SQL_ASCII, not UTF8"),
        },
      ],
    })
  }
})

describe('a WIN1252 database an older release installed: a character it cannot hold', () => {
  let win1252: DbHandle
  beforeAll(async () => {
    const url = await migratedByAnOlderRelease('WIN1252')
    win1252 = openDb({ name: 'default', url, log: silentLogger })
  })
  afterAll(async () => {
    await win1252?.close()
  })

  const cannotHold = (char: string) =>
    `holds ${char}, a character the database's encoding (WIN1252) cannot hold: the database must be UTF8 (deploy guide, "Database encoding")`

  test('an enqueue is refused naming the field and the encoding, not a NUL character; nothing is stored', async () => {
    const { app } = appOnDefault(win1252)
    const auth = await token()
    for (const [message, path, char] of [
      [{ to: 'ada@example.com', subject: 'Hi 😀', text: 'Hello' }, 'message.subject', 'U+1F600'],
      [
        { to: 'ada@example.com', subject: 'Hi', text: 'Hello\u3000there' },
        'message.text',
        'U+3000',
      ],
    ] as const) {
      const r = await send(app, 'POST', '/v1/outbox', { token: auth, body: { message } })
      expect([path, r.status, r.body]).toEqual([
        path,
        400,
        expect.objectContaining({
          type: 'urn:outbox-mailer:problem:validation_failed',
          errors: [{ path, message: cannotHold(char) }],
        }),
      ])
    }
    // Characters WIN1252 has (é, €, …) are taken as before.
    const taken = await send(app, 'POST', '/v1/outbox', {
      token: auth,
      body: { message: { to: 'ada@example.com', subject: 'Café €5 …', text: 'Hello' } },
    })
    expect(taken.status).toBe(201)
    const { rows } = await win1252.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows[0].n).toBe(1)
  })

  test('a list or bulk filter holding one names its parameter or field', async () => {
    const { app } = appOnDefault(win1252)
    const auth = await token()
    const listed = await send(app, 'GET', `/v1/outbox?dedupeKey=${encodeURIComponent('k😀')}`, {
      token: auth,
    })
    expect([listed.status, (listed.body as { errors?: unknown }).errors]).toEqual([
      400,
      [{ path: 'dedupeKey', message: cannotHold('U+1F600') }],
    ])
    const bulk = await send(app, 'POST', '/v1/outbox/retry', {
      token: auth,
      body: { filter: { status: ['failed'], dedupeKey: 'k\u3000' } },
    })
    expect([bulk.status, (bulk.body as { errors?: unknown }).errors]).toEqual([
      400,
      [{ path: 'filter.dedupeKey', message: cannotHold('U+3000') }],
    ])
  })

  test("a template's bodies are read there too: one of a comment alone is refused (0192), one with text taken", async () => {
    const write = (text: string) =>
      win1252.pool
        .query(
          `insert into mailer.templates (name, subject, text_body, to_addresses)
           values ('t' || md5($1), 'Hello', $1, '{sales@example.com}')`,
          [text],
        )
        .then(
          () => null,
          (e: { message: string }) => e.message,
        )
    expect(await write('{{! note }}\u00a0')).toStartWith('mailer: text_body has no placeholder')
    expect(await write('{{#a}}Café{{/a}}')).toBeNull()
  })
})
