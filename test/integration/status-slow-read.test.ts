// status when a read runs past --timeout with no lock in the way (a plain 57014: a server slow to answer, a read heavier than the bound): bounded, and what it means said.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { readDatabaseStatus } from '../../src/status/database-status.ts'
import { judge } from '../../src/status/status-report.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
let dbName: string
const reader = `status_slow_${process.pid}`
// Built at run time: no password literal sits in the repo.
const password = `pw-${randomBytes(12).toString('hex')}`
let url: string

beforeAll(async () => {
  t = await createTestDb()
  dbName = new URL(t.url).pathname.slice(1)
  await t.createRole(reader, `login password '${password}'`)
  await adminQuery(
    t.url,
    `grant connect on database ${dbName} to ${reader};
     grant usage on schema mailer to ${reader};
     grant select on all tables in schema mailer to ${reader}`,
  )
  await t.pool.query(
    `select mailer.enqueue_email('{"to": "ann@example.com", "subject": "s", "text": "t"}')`,
  )
  const u = new URL(t.url)
  u.username = reader
  u.password = password
  url = u.toString()
})
afterAll(async () => {
  await t.drop()
})

/**
 * Makes every read of `table` by the reader role slow, holding no lock: a row security policy whose
 * condition sleeps past the bound once per statement (an uncorrelated subquery, run once).
 */
async function slowReads(table: string, seconds: number) {
  await adminQuery(
    t.url,
    `alter table ${table} enable row level security;
     create policy slow_for_status on ${table} for select to ${reader}
       using ((select true from pg_sleep(${seconds})))`,
  )
  return async () => {
    await adminQuery(
      t.url,
      `drop policy slow_for_status on ${table}; alter table ${table} disable row level security`,
    )
  }
}

const read = () =>
  readDatabaseStatus(
    { name: 'default', url, listenUrl: url },
    { timeoutMs: 2_000, leaseSeconds: 60 },
  )
const judged = async () =>
  judge(await read(), { maxPendingAgeSeconds: 300, leaseSeconds: 60 }, (s) => s)

test('the counts run past --timeout, no lock held: attention, the section named with 57014 and what it means, the rest skipped', async () => {
  const undo = await slowReads('mailer.email_outbox', 20)
  try {
    const d = await judged()
    expect({ health: d.health, reasons: d.reasons }).toEqual({
      health: 'attention',
      reasons: [
        'counts not read: 57014: canceling statement due to statement timeout (the read ran past --timeout, 2 s, no lock in the way: the server is slow to answer, or the read is heavy for it)',
        "workers, mailbox pauses, pacing rate, failures, pending rows' errors not read after that (so as to end in time)",
      ],
    })
  } finally {
    await undo()
  }
})

test('the schema read runs past --timeout, no lock held: the database answered (not unreachable), attention, 57014 and what it means', async () => {
  const undo = await slowReads('mailer.schema_migrations', 20)
  try {
    const d = await judged()
    expect({ health: d.health, reachable: d.reachable, reasons: d.reasons }).toEqual({
      health: 'attention',
      reachable: true,
      reasons: [
        'schema not read: 57014: canceling statement due to statement timeout (the read ran past --timeout, 2 s, no lock in the way: the server is slow to answer, or the read is heavy for it)',
      ],
    })
  } finally {
    await undo()
  }
})
