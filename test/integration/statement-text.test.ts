// statementText: a written-out statement runs in the statement route's turn on its db, and as Kysely's compiled query on any other.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import type pg from 'pg'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { statementText } from '../../src/db/single-statement-db.ts'
import { silentLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
let h: DbHandle
let session: pg.Client
beforeAll(async () => {
  t = await createTestDb()
  // The route with a session attached, as serve's listener attaches its LISTEN session.
  h = openDb({ name: 'text', url: t.url, log: silentLogger, shareListenSession: true })
  session = h.listenSession!.newClient('statement-text-test')
  await session.connect()
  h.listenSession!.attach(session)
})
afterAll(async () => {
  await h.listenSession!.detach()
  await session.end()
  await h.close()
  await t.drop()
})

const DOUBLE =
  '/* prepared statement_text_double */ select $1::int * 2 as v, pg_backend_pid() as pid'
type Doubled = { v: number; pid: number }

test("on the route's db it takes the route's turn: the session when free, prepared there", async () => {
  const sessionPid = (await session.query<{ pid: number }>('select pg_backend_pid() as pid'))
    .rows[0]!.pid
  const { rows } = await statementText<Doubled>(h.statements.db, DOUBLE, [21])
  expect(rows).toEqual([{ v: 42, pid: sessionPid }])
  const onSession = await session.query<{ name: string }>(
    `select name from pg_prepared_statements where name = 'statement_text_double'`,
  )
  expect(onSession.rows).toHaveLength(1)
  // The turn was given back: the next statement takes the session again, and no pool connection.
  expect(h.statements.next()).toBe('session')
  expect(h.pool.totalCount).toBe(0)
})

test("on a pool's db and in a transaction it runs as a compiled query, in that transaction", async () => {
  expect((await statementText<Doubled>(t.db, DOUBLE, [2])).rows[0]!.v).toBe(4)
  const seen = await t.db.transaction().execute(async (trx) => {
    await statementText(
      trx,
      `insert into mailer.workers (id, host, pid, version) values ($1, 'h', 1, 'v')`,
      ['statement-text'],
    )
    return (
      await statementText<{ n: number }>(
        trx,
        'select count(*)::int as n from mailer.workers where id = $1',
        ['statement-text'],
      )
    ).rows[0]!.n
  })
  expect(seen).toBe(1)
  await t.db.deleteFrom('mailer.workers').where('id', '=', 'statement-text').execute()
})

test('a failure reaches the caller with its SQLSTATE either way, and the route stays usable', async () => {
  const divide = 'select 1 / $1::int as v'
  await expect(statementText(h.statements.db, divide, [0])).rejects.toMatchObject({ code: '22012' })
  await expect(statementText(t.db, divide, [0])).rejects.toMatchObject({ code: '22012' })
  expect((await statementText<{ v: number }>(h.statements.db, divide, [1])).rows).toEqual([
    { v: 1 },
  ])
  expect(h.statements.next()).toBe('session')
})

test("a claim on the route's db leases its rows as on a pool's", async () => {
  const first = await enqueue(t)
  const second = await enqueue(t)
  const params = { limit: 1, workerId: 'w', leaseSeconds: 60, defaultMaxAttempts: 8 }
  const viaRoute = await claimBatch(h.statements.db, { ...params, markStarted: true })
  const viaPool = await claimBatch(t.db, params)
  expect(viaRoute.leases.map((l) => [l.id, l.started])).toEqual([[first, true]])
  expect(viaPool.leases.map((l) => [l.id, l.started])).toEqual([[second, false]])
  const rows = await t.db
    .selectFrom('mailer.email_outbox')
    .select(['id', 'status', 'lease_token'])
    .where('id', 'in', [first, second])
    .orderBy('id')
    .execute()
  expect(rows).toEqual([
    { id: first, status: 'sending', lease_token: viaRoute.leases[0]!.token },
    { id: second, status: 'sending', lease_token: viaPool.leases[0]!.token },
  ])
})

test("the last check on the route's db starts rows, reads a mailbox's pause, and sees a row lost", async () => {
  const ids = [await enqueue(t), await enqueue(t), await enqueue(t), await enqueue(t)]
  const params = { limit: 4, workerId: 'w', leaseSeconds: 60, defaultMaxAttempts: 8 }
  const leases = (await claimBatch(h.statements.db, params)).leases
  expect(leases.map((l) => l.id)).toEqual(ids)
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at) values ('paused@example.com', now() + interval '1 minute')`,
  )
  const [plain, free, paused, lost] = leases
  const one = await startSends(h.statements.db, [plain!])
  expect([...one.started]).toEqual([plain!.id])
  const some = await startSends(h.statements.db, [
    { id: free!.id, token: free!.token, mailbox: 'free@example.com' },
    { id: paused!.id, token: paused!.token, mailbox: 'paused@example.com' },
    { id: lost!.id, token: crypto.randomUUID(), mailbox: 'free@example.com' },
  ])
  expect([...some.started]).toEqual([free!.id])
  expect([...some.paused.keys()]).toEqual([paused!.id])
  expect(some.paused.get(paused!.id)).toBeGreaterThan(0)
  expect([...some.lost]).toEqual([lost!.id])
  expect(h.statements.next()).toBe('session')
  await t.pool.query('delete from mailer.mailbox_pacing')
})
