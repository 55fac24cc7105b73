// A database whose encoding is not UTF8, migrated by an older release: warned of by check-config --connect, serve's start and /readyz, not refused; a request value it cannot hold refused in words of its own.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { checkConfig } from '../../src/check-config.ts'
import { migrate } from '../../src/db/migrate.ts'
import { checksumOf } from '../../src/db/migration-plan.ts'
import { migrations } from '../../src/db/migrations.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { markSent } from '../../src/outbox/mark-sent.ts'
import { fitFor } from '../../src/outbox/storable-in-encoding.ts'
import {
  markWaitingRowsAbove,
  markWaitingRowsFrom,
  type WaitingCause,
} from '../../src/outbox/waiting-rows.ts'
import { checkSchemas } from '../../src/schema-check-at-start.ts'
import { appOnDefault, send } from '../api/support/harness.ts'
import { token } from '../api/support/tokens.ts'
import { testCluster } from '../preload.ts'
import type { TestDb } from '../support/db.ts'
import { attemptsOf, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'
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
  let win1252Url: string
  beforeAll(async () => {
    win1252Url = await migratedByAnOlderRelease('WIN1252')
    win1252 = openDb({ name: 'default', url: win1252Url, log: silentLogger })
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

  test("a template's bodies are read there too: one of a comment alone is refused (0177), one with text taken", async () => {
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

  test("a worker stores Graph's error text holding characters WIN1252 has not as \\u{…}: the row fails, each row beside it is sent once, every row settled", async () => {
    const t = { ...win1252, url: win1252Url } as TestDb
    // Rows the tests above stored, which the worker would claim too.
    await t.pool.query('delete from mailer.email_outbox')
    const fake = await startFakeGraph({ clientSecret: 'right' })
    // Graph quoting a name in another script, and an emoji of a subject; WIN1252 holds "é" and "–".
    // The worker keeps Graph's words but for the address (masked, as in logs).
    const said = 'Invalid recipient 中文 <zh@example.com> (café – 😀)'
    fake.setFaults({ sendMail: [{ status: 400, code: 'ErrorInvalidRecipients', message: said }] })
    const ids: string[] = []
    for (const n of [1, 2, 3])
      ids.push(await enqueue(t, { to: `r${n}@example.com`, subject: 'Hello', text: 'Hi there' }))
    const worker = graphWorker(t, fake, {
      workerId: 'w-win1252',
      mailFrom: 'noreply@contoso.com',
      graceSeconds: 1,
      lookups: false,
    })
    const statuses = async () =>
      (
        await t.pool.query<{ status: string; last_error: string | null }>(
          'select status, last_error from mailer.email_outbox where id = any($1::bigint[]) order by status',
          [ids],
        )
      ).rows
    await worker.start()
    try {
      // Bounded well inside half the lease (30 s), after which an unrecorded outcome is given up.
      await pollUntil(
        async () =>
          (await statuses()).every((r) => r.status !== 'sending' && r.status !== 'pending')
            ? true
            : undefined,
        8_000,
      ).catch(() => {})
    } finally {
      await worker.stop()
      await fake.stop()
    }
    const stored = 'Invalid recipient \\u{4E2D}\\u{6587} <[address]> (café – \\u{1F600})'
    expect(await statuses()).toEqual([
      { status: 'failed', last_error: expect.stringContaining(stored) },
      { status: 'sent', last_error: null },
      { status: 'sent', last_error: null },
    ])
    const failed = (
      await t.pool.query(
        "select id from mailer.email_outbox where id = any($1::bigint[]) and status = 'failed'",
        [ids],
      )
    ).rows[0]!.id as string
    expect(await attemptsOf(t, failed, 'outcome, error')).toEqual([
      { outcome: 'failed', error: expect.stringContaining(stored) },
    ])
    // Three requests: the refused one and one per row sent; none sent again.
    expect(fake.accepted).toHaveLength(2)
    expect(new Set(fake.accepted.map((a) => a.outboxId)).size).toBe(2)
  })

  test('a sent row whose request id holds such a character is recorded sent, the id written \\u{…}', async () => {
    // A handle of its own: its statements have not met the encoding yet.
    const h = openDb({ name: 'test', url: win1252Url, log: silentLogger })
    const t = { ...win1252, url: win1252Url } as TestDb
    try {
      const id = await enqueue(t, {
        to: 'r@example.com',
        subject: 'Hello',
        text: 'Hi there',
      })
      const oneLease = { limit: 1, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }
      const [lease] = (await claimBatch(h.db, oneLease)).leases
      expect(lease?.id).toBe(id)
      const marked = await markSent(
        h.db,
        [
          {
            id,
            token: lease!.token,
            settlement: { kind: 'sent' },
            startedAt: null,
            requestId: 'req-中',
          },
        ],
        'w1',
      )
      expect([...marked.sent]).toEqual([id])
      expect(await attemptsOf(t, id, 'outcome, request_id')).toEqual([
        { outcome: 'sent', request_id: 'req-\\u{4E2D}' },
      ])
    } finally {
      await h.close()
    }
  })

  test("a refused credential's words (Entra's, naming a directory in another script) name the due rows it holds, written \\u{…}", async () => {
    // A handle of its own: its statements have not met the encoding yet.
    const h = openDb({ name: 'test', url: win1252Url, log: silentLogger })
    const t = { ...win1252, url: win1252Url } as TestDb
    try {
      await t.pool.query('delete from mailer.email_outbox')
      const first = await enqueue(t)
      // Entra's AADSTS700016 quotes the directory's display name, which may be in any script.
      const cause: WaitingCause = {
        code: 'AADSTS700016',
        message:
          "unauthorized_client: AADSTS700016: Application with identifier 'a1' was not found in the directory '株式会社 Café'.",
        mailFromKey: null,
      }
      expect((await markWaitingRowsFrom(h.db, cause, null)).marked).toBe(1)
      // The rows enqueued since, by id.
      const second = await enqueue(t)
      expect((await markWaitingRowsAbove(h.db, cause, first)).marked).toBe(1)
      const { rows } = await t.pool.query(
        'select last_error_code, last_error from mailer.email_outbox where id = any($1::bigint[]) order by id',
        [[first, second]],
      )
      const stored =
        "unauthorized_client: AADSTS700016: Application with identifier 'a1' was not found in the directory '\\u{682A}\\u{5F0F}\\u{4F1A}\\u{793E} Café'."
      expect(rows).toEqual([
        { last_error_code: 'AADSTS700016', last_error: stored },
        { last_error_code: 'AADSTS700016', last_error: stored },
      ])
    } finally {
      await h.close()
    }
  })

  test('the fit of a WIN1252 or LATIN1 database keeps exactly the characters Postgres converts into it', async () => {
    // U+0080-U+2FFF (Latin, Greek, Cyrillic, punctuation, symbols; WIN1252's 0x80-0x9F among
    // them), and an astral character: each asked of Postgres's own conversion, in one statement.
    const points = [...Array.from({ length: 0x3000 - 0x80 }, (_, i) => 0x80 + i), 0x1f600]
    // WIN1252's the database above; LATIN1's one created empty (its conversion needs no schema).
    for (const [encoding, url] of [
      ['WIN1252', win1252Url],
      ['LATIN1', await databaseIn('LATIN1')],
    ] as const) {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      try {
        await client.query(`create function pg_temp.holds(utf8 bytea) returns boolean language plpgsql as $$
          begin perform convert_from(utf8, 'UTF8'); return true;
          exception when untranslatable_character then return false; end $$`)
        const { rows } = await client.query<{ held: number[] }>(
          `select coalesce(array_agg(cp order by cp), '{}') as held
             from unnest($1::int[], $2::text[]) as t(cp, hex) where pg_temp.holds(decode(hex, 'hex'))`,
          [points, points.map((cp) => Buffer.from(String.fromCodePoint(cp)).toString('hex'))],
        )
        const fit = fitFor(encoding)
        const held = points.filter(
          (cp) => fit(String.fromCodePoint(cp)) === String.fromCodePoint(cp),
        )
        expect([encoding, held]).toEqual([encoding, rows[0]!.held])
      } finally {
        await client.end()
      }
    }
    expect(fitFor('WIN1252')('Café € 中 😀 \u0000')).toBe('Café € \\u{4E2D} \\u{1F600} ')
    expect(fitFor('UTF8')('中 😀 \u0000')).toBe('中 😀 ')
  })
})
