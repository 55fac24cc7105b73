// A pooled DATABASE_URL (PgBouncer with its default settings, as Fly's Managed Postgres hands out) is drained.

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import net from 'node:net'
import { sql } from 'kysely'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { refusesStartupTimeout } from '../../src/db/startup-timeout-pool.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { checkSchemas } from '../../src/schema-check-at-start.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'
import { loneListener } from '../support/lone-listener.ts'
import { startTransactionPooler, type TransactionPooler } from '../support/transaction-pooler.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
let pooler: TransactionPooler
beforeAll(async () => {
  t = await createTestDb()
  pooler = await startTransactionPooler(t.url)
})
afterAll(async () => {
  await pooler.close()
  await t.drop()
})

function openPooled(): { h: DbHandle; warnings: string[] } {
  const warnings: string[] = []
  const log = createLogger('warn', (line) => warnings.push(JSON.parse(line).msg))
  return { h: openDb({ name: 'pooled', url: pooler.url, log, maxConnections: 2 }), warnings }
}

test('through a pooler that refuses statement_timeout at startup, no statement fails; one warning says so', async () => {
  const { h, warnings } = openPooled()
  try {
    // The first connection meets the refusal: it must not be the caller's failure.
    expect((await sql<{ v: number }>`select 1 as v`.execute(h.db)).rows[0]!.v).toBe(1)
    expect((await h.statements.query<{ v: number }>('select 2 as v')).rows[0]!.v).toBe(2)
    // A second connection of the pool (the first is still held) is opened without asking again.
    await h.db.transaction().execute(async (trx) => {
      await sql`select 1`.execute(trx)
      expect((await h.statements.query<{ v: number }>('select 3 as v')).rows[0]!.v).toBe(3)
    })
    expect(warnings.filter((w) => /statement_timeout/.test(w))).toHaveLength(1)
  } finally {
    await h.close()
  }
})

test('pooled DATABASE_URL with a direct LISTEN URL (the deploy guide): a row is sent', async () => {
  const { h } = openPooled()
  const e = createTestEngine(t, { handle: h })
  try {
    await e.start()
    const id = await enqueue(t)
    await e.events.waitFor(settledFor(id, 'sent'), 10_000)
    expect((await rowOf(t, id)).status).toBe('sent')
  } finally {
    await e.stop()
    await h.close()
  }
})

test('a single pooled URL whose pooler keeps giving the LISTEN client one server session: polls, says so', async () => {
  // PgBouncer when quiet: pg_listening_channels() is asked where the LISTEN ran and says yes, yet a
  // notification from another session is dropped while no transaction of this client runs.
  const sameSession = await startTransactionPooler(t.url, 1)
  const h = openDb({
    name: 'pooled',
    url: sameSession.url,
    log: createLogger('error', () => {}),
    shareListenSession: true,
  })
  // The drainer polls every second once its listener has fallen back to polling, at the long
  // backstop poll before (testWorkerConfig's 600 s): the row below goes out only if polling began.
  const e = createTestEngine(t, { handle: h })
  try {
    e.listener.start()
    e.drainer.start()
    await e.events.waitFor((x) => x.type === 'listener' && x.state === 'polling', 10_000)
    const id = await enqueue(t)
    await e.events.waitFor(settledFor(id, 'sent'), 10_000)
    expect(e.listener.state()).toBe('polling')
  } finally {
    await e.stop()
    await h.close()
    await sameSession.close()
  }
})

test('one pooled URL for the pool and LISTEN: the LISTEN session meets no refusal the pool has learnt of, and logs no failed connect', async () => {
  const sameSession = await startTransactionPooler(t.url, 1)
  const warnings: string[] = []
  const log = createLogger('warn', (line) => warnings.push(JSON.parse(line).msg))
  const h = openDb({ name: 'pooled', url: sameSession.url, log, shareListenSession: true })
  const { listener, events } = loneListener(sameSession.url, {
    db: 'pooled',
    log,
    shared: h.listenSession,
  })
  try {
    // serve connects the LISTEN session while the pool reads the schema; here it goes first and
    // alone, so it meets the refusal before the pool does.
    listener.start()
    await events.waitFor((x) => x.type === 'listener' && x.state === 'polling', 10_000)
    expect((await h.statements.query<{ v: number }>('select 1 as v')).rows[0]!.v).toBe(1)
    expect(warnings.filter((w) => /could not connect/.test(w))).toEqual([])
    expect(warnings.filter((w) => /statement_timeout/.test(w))).toHaveLength(1)
  } finally {
    await listener.stop()
    await h.close()
    await sameSession.close()
  }
})

test('against Postgres itself the pool and the shared LISTEN session keep statement_timeout; only the pooler refusal drops it', async () => {
  const h = openDb({
    name: 'direct',
    url: t.url,
    log: createLogger('error', () => {}),
    shareListenSession: true,
  })
  const session = h.listenSession!.newClient('outbox-mailer:probe-test')
  try {
    const shown = async (q: {
      query: (text: string) => Promise<{ rows: { statement_timeout: string }[] }>
    }) => (await q.query('show statement_timeout')).rows[0]!.statement_timeout
    expect(await shown(h.pool)).toBe('30s')
    await session.connect()
    expect(await shown(session)).toBe('30s')
    // Postgres's own 08P01s (protocol violations) and a refused setting (42704) are not the refusal.
    const error = (code: string, message: string) => Object.assign(new Error(message), { code })
    expect(
      refusesStartupTimeout(
        error('08P01', 'invalid startup packet layout: expected terminator as last byte'),
      ),
    ).toBe(false)
    expect(refusesStartupTimeout(error('08P01', 'unsupported frontend protocol 9.0'))).toBe(false)
    expect(
      refusesStartupTimeout(
        error('42704', 'unrecognized configuration parameter "statement_timeout"'),
      ),
    ).toBe(false)
    expect(
      refusesStartupTimeout(error('08P01', 'unsupported startup parameter: statement_timeout')),
    ).toBe(true)
  } finally {
    await session.end()
    await h.close()
  }
})

test("serve's start refuses a URL behind a pooler in statement mode (which refuses every transaction), naming the mode", async () => {
  const statementPooler = await startTransactionPooler(t.url, 2, { statementMode: true })
  const h = openDb({
    name: 'pooled',
    url: statementPooler.url,
    log: silentLogger,
    maxConnections: 2,
  })
  try {
    await expect(checkSchemas([h], silentLogger)).rejects.toMatchObject({
      code: 'config_invalid',
      message: expect.stringContaining('statement pooling mode'),
    })
  } finally {
    await h.close()
    await statementPooler.close()
  }
})

test("serve's start asks a database it cannot reach once: the statement-mode probe's failure is the start's verdict, not followed by the schema check's own wait", async () => {
  // A server that hangs up on every connection: each is an attempt that, against a server down
  // behind a proxy, waits out the connect's 10 s, and the start of every database waits for it.
  let attempts = 0
  const server = net.createServer((socket) => {
    attempts += 1
    socket.destroy()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = new URL(t.url)
  url.port = String((server.address() as net.AddressInfo).port)
  const lines: { msg: string; db?: string }[] = []
  const h = openDb({ name: 'away', url: url.href, log: silentLogger, maxConnections: 2 })
  try {
    const { current } = await checkSchemas(
      [h],
      createLogger('warn', (l) => lines.push(JSON.parse(l))),
    )
    expect({ current, attempts, lines }).toEqual({
      current: [],
      attempts: 1,
      lines: [
        expect.objectContaining({
          msg: 'database unreachable at start; will keep trying',
          db: 'away',
        }),
      ],
    })
  } finally {
    await h.close()
    await new Promise<void>((r) => server.close(() => r()))
  }
})
