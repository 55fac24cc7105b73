// Two deployments (staging, production) whose databases share a name, sending from one mailbox: a lookup never takes the other's message.
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadConfig } from '../../src/config.ts'
import { readDatabaseId } from '../../src/db/database-id.ts'
import { migrate } from '../../src/db/migrate.ts'
import type { Queryable } from '../../src/db/queryable.ts'
import { silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { createTransport } from '../../src/transport-wiring.ts'
import { testCluster } from '../preload.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { type FakeGraph, graphEnvFor, startFakeGraph } from '../support/fake-graph.ts'
import { outboundMail } from '../support/outbound-mail.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const FROM = 'noreply@contoso.com'

let production: TestDb
let staging: TestDb
let fake: FakeGraph
let secret: string

beforeAll(async () => {
  ;[production, staging] = await Promise.all([createTestDb(), createTestDb()])
})
afterAll(async () => {
  await Promise.all([production.drop(), staging.drop()])
})
afterEach(async () => {
  await fake?.stop()
  await Promise.all([production.reset(), staging.reset()])
})

async function graph(): Promise<FakeGraph> {
  secret = randomUUID()
  fake = await startFakeGraph({ clientSecret: secret, mailboxes: [FROM] })
  return fake
}

/**
 * One deployment's worker as `serve` runs it: DATABASE_URL alone (so its database is `default`, as
 * every such deployment's is), Graph with lookups on, until its row `id` is `status`.
 */
async function deployment(db: TestDb, ids: string[], status: string): Promise<void> {
  const running = await serve(configFor(db), { role: 'worker', log: silentLogger })
  try {
    // 0.1-0.2 s alone; bounded well past a loaded server's (the file's timeout is 60 s).
    await pollUntil(async () => {
      const rows = await Promise.all(ids.map((id) => rowOf(db, id)))
      return rows.every((r) => r.status === status) ? true : undefined
    }, 30_000)
  } finally {
    await running.stop('test')
    // A statement of the stopped worker's may still run on the server after its stop (which one is
    // not known: a backend learns of a dropped connection only when it answers). The reset's
    // TRUNCATE locks the outbox and then mailbox_pacing, a guarded claim mailbox_pacing and then the
    // outbox: met, they deadlocked (40P01 in a loaded full run). The test's own connections are idle.
    // Client sessions only: an autovacuum worker on this database (its catalogs churn with every
    // reset's TRUNCATE; a long-lived TEST_DATABASE_URL server's autovacuum is busy) is 'active'
    // too, yields to a TRUNCATE's lock (Postgres cancels it), and would hold this wait while it runs.
    await pollUntil(async () => {
      const r = await db.pool.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and backend_type = 'client backend'
            and pid <> pg_backend_pid() and state <> 'idle'`,
      )
      return r.rows[0]!.n === 0 ? true : undefined
    })
  }
}

const configFor = (db: TestDb) =>
  loadConfig({
    ...graphEnvFor(fake),
    DATABASE_URL: db.url,
    MAIL_FROM: FROM,
    GRAPH_CLIENT_SECRET: secret,
    GRAPH_MAILBOX_LOOKUP: 'true',
    GRAPH_REQUEST_TIMEOUT_SECONDS: '5',
    MAILBOX_RATE_PER_MINUTE: '0',
    HOST: '127.0.0.1',
    PORT: '0',
  })

/**
 * What the release before the database id sent for a row of `db`'s: its mail, tagged with its
 * outbox id and its database's name only (a Graph sender not wired to the id, as that release's).
 */
async function sentByPreviousRelease(db: TestDb, id: string, to: string, subject: string) {
  const sender = createTransport(configFor(db), silentLogger).senderFor('default')
  const mail = outboundMail(FROM, { outboxId: id, to: [{ address: to }], subject })
  expect(await sender.send(mail, new AbortController().signal)).toMatchObject({ kind: 'sent' })
}

/** Row `id`'s send was interrupted an attempt ago, long enough for a "not found" to be believed. */
async function interrupted(db: TestDb, id: string): Promise<void> {
  await db.pool.query(
    `update mailer.email_outbox set send_started_at = now() - interval '5 minutes', attempts = 1 where id = $1`,
    [id],
  )
}

/** The subjects of the messages Graph took with outbox id `id`, oldest first. */
const subjectsOf = (id: string) =>
  fake.accepted
    .filter((a) => a.outboxId === id)
    .map((a) => (a.body.message as { subject: string }).subject)

test("production's interrupted row is not taken as sent for staging's message with its id: it is sent", async () => {
  await graph()
  // Fresh databases: both rows get id 1.
  const fromStaging = await enqueue(staging, {
    to: 'tester@contoso.com',
    subject: 'staging: try the new checkout',
    text: 's',
  })
  const fromProduction = await enqueue(production, {
    to: 'ann@contoso.com',
    subject: 'Your order',
    text: 'Shipped.',
  })
  expect(fromProduction).toBe(fromStaging)
  await deployment(staging, [fromStaging], 'sent')
  // Production's send of its row 1 was cut off before Graph had any of it (a worker killed).
  await interrupted(production, fromProduction)
  await deployment(production, [fromProduction], 'sent')
  expect(subjectsOf(fromProduction)).toEqual(['staging: try the new checkout', 'Your order'])
})

test('a rolling deploy: a send the previous release started (its message naming the database only) is found, not sent twice; the same id of the other deployment is not', async () => {
  await graph()
  const rows = (db: TestDb, mails: [string, string][]) =>
    Promise.all(mails.map(([to, subject]) => enqueue(db, { to, subject, text: 'x' })))
  const stagingMails: [string, string][] = [
    ['tester@contoso.com', 'staging: order'],
    ['tester@contoso.com', 'staging: invoice'],
  ]
  const productionMails: [string, string][] = [
    ['ann@contoso.com', 'Your order'],
    ['bob@contoso.com', 'Your invoice'],
  ]
  const [s1, s2] = await rows(staging, stagingMails)
  const [p1, p2] = await rows(production, productionMails)
  expect([p1, p2]).toEqual([s1!, s2!])
  // Staging's previous release sent its rows 1 and 2; production's, its row 1 only, and both its
  // rows' sends were interrupted (row 1's answer lost, row 2's before Graph had it): then the
  // new release came.
  for (const [i, id] of [s1!, s2!].entries()) {
    await sentByPreviousRelease(staging, id, ...stagingMails[i]!)
  }
  await sentByPreviousRelease(production, p1!, ...productionMails[0]!)
  await interrupted(production, p1!)
  await interrupted(production, p2!)
  await deployment(production, [p1!, p2!], 'sent')
  expect(subjectsOf(p1!)).toEqual(['staging: order', 'Your order'])
  expect(subjectsOf(p2!)).toEqual(['staging: invoice', 'Your invoice'])
})

test("a database cloned from production shares its id until the README's statement gives it its own; migrate again keeps it", async () => {
  const cluster = await testCluster()
  const suffix = randomUUID().replaceAll('-', '').slice(0, 12)
  const [source, clone] = [`outbox_src_${suffix}`, `outbox_clone_${suffix}`]
  const admin = cluster.admin
  const idOf = async (name: string) => {
    const q = { query: (text: string) => adminQuery(cluster.url(name), text) } as Queryable
    return readDatabaseId(q)
  }
  try {
    await adminQuery(admin, `create database ${source} template ${cluster.templateName}`)
    await adminQuery(
      cluster.url(source),
      'update mailer.database_identity set id = gen_random_uuid()',
    )
    // A staging database made from production's (a template here; a branch, a dump restored).
    await adminQuery(admin, `create database ${clone} template ${source}`)
    const original = await idOf(source)
    expect(await idOf(clone)).toBe(original)
    const readme = await readFile(join(import.meta.dir, '../../README.md'), 'utf8')
    const statement = /^ *(update mailer\.database_identity .*;)$/m.exec(readme)?.[1]
    expect(statement).toBe('update mailer.database_identity set id = gen_random_uuid();')
    await adminQuery(cluster.url(clone), statement!)
    const own = await idOf(clone)
    expect(own).not.toBe(original)
    expect(own).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(await idOf(source)).toBe(original)
    expect((await migrate({ url: cluster.url(clone), log: silentLogger })).applied).toEqual([])
    expect(await idOf(clone)).toBe(own)
  } finally {
    for (const name of [clone, source]) {
      await adminQuery(admin, `drop database if exists ${name} with (force)`)
    }
  }
})
