// A worker whose role is at its connection limit (SQLSTATE 53300): claims fail naming it, and once a slot frees every row is sent once.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { allIn, createTestEngine, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()
const role = `limited_${process.pid}`
const closing: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const close of closing.reverse()) await close().catch(() => {})
})

test('started with every connection its role may open taken, the worker claims again and again naming 53300, then drains each row once', async () => {
  // One connection for the role: serve's default, the worker's statements riding its LISTEN
  // session, needs no more.
  await t.createRole(role, `login password 'pw' connection limit 1`)
  await t.pool.query(
    `grant usage on schema mailer to ${role};
     grant select, insert, update, delete on all tables in schema mailer to ${role};
     grant execute on all functions in schema mailer to ${role}`,
  )
  const url = new URL(t.url)
  url.username = role
  url.password = 'pw'
  // The application's own connection holds the role's one slot while the worker starts.
  const other = new pg.Client({ connectionString: url.toString() })
  // Released by the test; if it failed first, the file's afterAll ends it after useTestDb's drop
  // has (bun runs a file's afterAll hooks in the order registered): no unhandled 57P01 on top.
  other.on('error', () => {})
  await other.connect()
  let released = false
  const release = async () => {
    if (!released) await other.end()
    released = true
  }
  closing.push(release)
  const handle = openDb({
    name: 'test',
    url: url.toString(),
    log: silentLogger,
    maxConnections: 14,
    shareListenSession: true,
  })
  closing.push(() => handle.close())
  const message = JSON.stringify({ to: [{ address: 'a@example.com' }], subject: 'Hi', text: 'x' })
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message) select $1::jsonb from generate_series(1, 30) returning id`,
    [message],
  )
  const engine: TestEngine = createTestEngine(t, {
    handle,
    listenUrl: url.toString(),
    config: { pollIntervalSeconds: 1 },
  })
  closing.push(() => engine.stop())
  engine.listener.start()
  engine.drainer.start()
  // Each claim fails for want of a connection; the loop keeps trying and says why.
  const failing = await pollUntil(async () => {
    const f = engine.drainer.status().claimsFailing
    return f && engine.events.events.filter((e) => e.type === 'loop_error').length >= 2
      ? f
      : undefined
  })
  expect([failing.sqlstate, engine.drainer.status().running, engine.sender.calls.length]).toEqual([
    '53300',
    true,
    0,
  ])
  await release()
  await allIn(t, 'sent', rows.length)
  expect(engine.sender.calls.map((c) => c.outboxId).sort()).toEqual(rows.map((r) => r.id).sort())
  expect(engine.drainer.status().claimsFailing).toBeNull()
})
