// An oldest-first page waits for its own database's outbox writers, not for another database's on the same server whose outbox has the same oid.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { listOutbox } from '../../src/outbox/inspect.ts'
import { createTestDb, type TestDb, useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let other: TestDb
beforeAll(async () => {
  other = await createTestDb()
})
afterAll(async () => {
  await other.drop()
})

const MESSAGE = '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'
const outboxOid = async (d: TestDb) =>
  (await d.pool.query(`select 'mailer.email_outbox'::regclass::oid::text as oid`)).rows[0].oid

test("a writer open in another database (made from the same template: its outbox's oid is this one's) neither holds this database's page nor makes it a 503", async () => {
  // Databases cloned from one template (the tests' own; a staging copy made with CREATE DATABASE …
  // TEMPLATE) share their tables' oids; pg_locks names a relation by oid and database.
  expect(await outboxOid(other)).toBe(await outboxOid(t))
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message) values ($1::jsonb) returning id::text`,
    [MESSAGE],
  )
  const writer = await other.pool.connect()
  try {
    await writer.query('begin')
    await writer.query(`insert into mailer.email_outbox (message) values ($1::jsonb)`, [MESSAGE])
    const page = await listOutbox(t.db, {}, { limit: 10, order: 'oldest' }, null)
    expect(page.items.map((i) => i.id)).toEqual([rows[0]!.id])
  } finally {
    await writer.query('rollback')
    writer.release()
  }
})
