// A failover that leaves the old primary up read-only: a connection that met 25006 is not used again, so the next statement gets a fresh one and the LISTEN session is opened again.
import { afterEach, beforeAll, expect, setDefaultTimeout, setSystemTime, test } from 'bun:test'
import { sql } from 'kysely'
import { loadConfig } from '../../src/config.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { serve } from '../../src/serve.ts'
import { appOnDefault, send } from '../api/support/harness.ts'
import { token } from '../api/support/tokens.ts'
import { testCluster } from '../preload.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { adminQuery } from '../support/postgres.ts'
import { type SilencingProxy, startSilencingProxy } from '../support/silencing-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let h: DbHandle | null = null
let e: TestEngine | null = null
let proxy: SilencingProxy | null = null
beforeAll(async () => {
  // The test's own pool keeps a read-write connection for its checks.
  await t.pool.query('select 1')
})
afterEach(async () => {
  await e?.stop()
  await h?.close()
  proxy?.close()
  e = null
  h = null
  proxy = null
  await readOnly(false)
  await t.reset()
})

/**
 * The health monitor over `handle` alone, as serve wires one: the handle's answers stand for a
 * probe's (unless `answered: false`); `sent` collects the statements its probes send.
 */
function monitorOf(
  handle: DbHandle,
  o: { sent?: string[]; answered?: boolean; monotonicNow?: () => number } = {},
) {
  const sent = o.sent
  return createHealthMonitor({
    databases: [
      {
        name: 'test',
        statements: sent
          ? {
              query: (text, values) => {
                sent.push(text)
                return handle.statements.query(text, values)
              },
            }
          : handle.statements,
        ...(o.answered === false ? {} : { answeredAt: () => handle.statements.answeredAt() }),
        drainer: null,
        listener: null,
        writes: handle.writes,
      },
    ],
    schemaCurrent: ['test'],
    wedgedAfterMs: 120_000,
    ...(o.monotonicNow ? { monotonicNow: o.monotonicNow } : {}),
  })
}

/**
 * Sessions opened from now on start read-only, as every session on a primary demoted by a
 * failover does (writes raise 25006); sessions opened before keep what they started with. So a
 * pool's connections opened while it is on stay read-only after it is off, as connections to the
 * old primary do while the URL already leads to the new one.
 */
async function readOnly(on: boolean) {
  const name = new URL(t.url).pathname.slice(1)
  await adminQuery(
    (await testCluster()).admin,
    on
      ? `alter database "${name}" set default_transaction_read_only = on`
      : `alter database "${name}" reset default_transaction_read_only`,
  )
}

/**
 * The test database made read-only, and a handle on it whose clock the test moves (`clock.at`), its
 * log lines from `level` up, and a write as the worker's and the API's go (through Kysely: pg's
 * pool.query closes a connection whose statement failed) answering 'written' or its SQLSTATE.
 */
async function openOnReadOnly(level: 'debug' | 'info') {
  await readOnly(true)
  const clock = { at: 1_000_000 }
  const lines: { level: string; msg: string }[] = []
  const handle = openDb({
    name: 'test',
    url: t.url,
    log: createLogger(level, (l) => lines.push(JSON.parse(l))),
    monotonicNow: () => clock.at,
  })
  h = handle
  // A read-only server refuses an UPDATE before it looks at a row.
  const write = () =>
    sql`update mailer.email_outbox set attempts = attempts where false`.execute(handle.db).then(
      () => 'written',
      (err: { code?: string }) => err.code,
    )
  return { handle, clock, lines, write }
}

/** Opens `n` pool connections at once and gives them back idle: each says whether it is read-only. */
async function openConnections(handle: DbHandle, n: number): Promise<string[]> {
  const clients = await Promise.all(Array.from({ length: n }, () => handle.pool.connect()))
  const modes = await Promise.all(
    clients.map(
      async (c) =>
        (
          await c.query<{ m: string }>(
            "select current_setting('default_transaction_read_only') as m",
          )
        ).rows[0]!.m,
    ),
  )
  for (const c of clients) c.release()
  return modes
}

test('a worker whose LISTEN session and pooled connections reach a read-only server: the first statement that meets 25006 drops them, claims resume on a fresh connection, a fresh session listens', async () => {
  h = openDb({ name: 'test', url: t.url, log: silentLogger, shareListenSession: true })
  const handle = h
  // Due before the failover: the worker's first claim writes (a claim that finds nothing does not).
  const before = await enqueue(t)
  await readOnly(true)
  expect(await openConnections(handle, 3)).toEqual(['on', 'on', 'on'])
  e = createTestEngine(t, { handle })
  const engine = e
  // The LISTEN session, opened now, is read-only too; the worker's statements ride it when free.
  engine.listener.start()
  await engine.events.waitFor((ev) => ev.type === 'listener' && ev.state === 'listening')
  const readOnlyPid = engine.listener.backendPid()
  await readOnly(false)
  // New sessions are read-write now; the worker's are not, until it drops them.
  engine.drainer.start()
  await engine.events.waitFor(settledFor(before, 'sent'), 10_000)
  // At most the first write failed (the registry's beat or a claim), not one per connection.
  const claimErrors = engine.events.events.filter(
    (ev) => ev.type === 'loop_error' && ev.where === 'claim',
  )
  expect(claimErrors.length).toBeLessThanOrEqual(1)
  // A fresh LISTEN session replaces the read-only one (the backstop poll is 10 minutes away, so
  // only a notification heard on it sends the row below).
  await pollUntil(async () => {
    const pid = engine.listener.backendPid()
    return engine.listener.state() === 'listening' && pid !== null && pid !== readOnlyPid
      ? true
      : undefined
  })
  const after = await enqueue(t)
  await engine.events.waitFor(settledFor(after, 'sent'), 10_000)
  expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([before, after])
  // The pool kept no connection to the read-only server.
  expect(await openConnections(handle, 3)).toEqual(['off', 'off', 'off'])
})

test('a worker whose LISTEN session has a URL of its own (LISTEN_DATABASE_URL), which never writes: when a write meets 25006 the session is opened again too, and a row enqueued after the failover is picked up on its notification', async () => {
  // The same server through a proxy: a LISTEN URL distinct from the pool's, as serve then opens it.
  proxy = await startSilencingProxy(t.url)
  const listenProxy = proxy
  h = openDb({ name: 'test', url: t.url, log: silentLogger })
  const handle = h
  const before = await enqueue(t)
  await readOnly(true)
  expect(await openConnections(handle, 3)).toEqual(['on', 'on', 'on'])
  e = createTestEngine(t, { handle, listenUrl: listenProxy.url })
  const engine = e
  expect(handle.listenSession).toBeNull()
  engine.listener.start()
  await engine.events.waitFor((ev) => ev.type === 'listener' && ev.state === 'listening')
  const oldPid = engine.listener.backendPid()
  await readOnly(false)
  // The failover: the LISTEN session still reaches the old primary, which answers but hears no
  // NOTIFY of the application's any more (it writes to the new one). Here both are one server, so
  // the proxy forwards nothing more on the connections open now (the session); new ones pass.
  listenProxy.silence()
  engine.drainer.start()
  await engine.events.waitFor(settledFor(before, 'sent'), 10_000)
  // The pool's first write met 25006: the LISTEN session is replaced though it never wrote.
  await pollUntil(async () => {
    const pid = engine.listener.backendPid()
    return engine.listener.state() === 'listening' && pid !== null && pid !== oldPid
      ? true
      : undefined
  })
  const heard = engine.events.events.length
  const after = await enqueue(t)
  await engine.events.waitFor(settledFor(after, 'sent'), 10_000)
  // Woken by its notification: the backstop poll is 10 minutes away, and no reconnect swept since.
  const since = engine.events.events.slice(heard)
  expect(since.some((ev) => ev.type === 'notification')).toBe(true)
  expect(since.filter((ev) => ev.type === 'listener')).toEqual([])
  expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([before, after])
})

test('the API: an enqueue that meets a pooled read-only connection answers 503 once; the next one gets a fresh connection and 201', async () => {
  h = openDb({ name: 'default', url: t.url, log: silentLogger })
  await readOnly(true)
  expect(await openConnections(h, 3)).toEqual(['on', 'on', 'on'])
  await readOnly(false)
  const { app } = appOnDefault(h)
  const tk = await token()
  const body = { message: { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' } }
  const first = await send(app, 'POST', '/v1/outbox', { token: tk, body })
  expect([first.status, (first.body as { type?: string }).type]).toEqual([
    503,
    'urn:outbox-mailer:problem:database_unavailable',
  ])
  const second = await send(app, 'POST', '/v1/outbox', { token: tk, body })
  expect(second.status).toBe(201)
  // The pool kept no connection to the read-only server.
  expect(await openConnections(h, 3)).toEqual(['off', 'off', 'off'])
})

test('a URL that names a server read-only for good (a standby): refused writes retire the connections at once, then at most once per hold-off, and the warning is logged once', async () => {
  const { handle, clock, lines, write } = await openOnReadOnly('debug')
  let connects = 0
  handle.pool.on('connect', () => connects++)
  // What a LISTEN session on a URL of its own reconnects (and sweeps) on.
  let retirements = 0
  const watch = (): void =>
    void handle.connectionsRetired().then(() => {
      retirements++
      watch()
    })
  watch()
  // A client retrying at once, ten times within the hold-off: the first refusal retires the
  // connection (a failover must be answered at once); the next ones keep its successor.
  for (let i = 0; i < 10; i++) expect(await write()).toBe('25006')
  expect(connects).toBe(2)
  // Past the hold-off the next refusal retires again (the URL may lead elsewhere by now).
  clock.at += 5_000
  expect(await write()).toBe('25006')
  expect(await write()).toBe('25006')
  expect([connects, retirements]).toEqual([3, 2])
  const warned = lines.filter((l) => l.level === 'warn' && l.msg.includes('read-only'))
  expect(warned.length).toBe(1)
})

test('readiness: a database whose writes are refused is unready, saying it refuses writes, until a probe finds it taking them again', async () => {
  const { handle, clock, lines, write } = await openOnReadOnly('info')
  const monitor = monitorOf(handle, { answered: false, monotonicNow: () => clock.at })
  // No write tried yet: the probe's own statement says the session refuses them.
  expect((await monitor.readiness())[0]!.problem).toContain('refuses writes (read-only: ')
  expect(await write()).toBe('25006')
  clock.at += 2_000
  const [refusing] = await monitor.readiness()
  expect(refusing).toMatchObject({ reachable: true, migrated: true })
  expect(refusing!.problem).toBe(
    'the database refuses writes (read-only: a hot standby, or a failover under way) for 2s: nothing can be claimed or enqueued; check that its URL names the primary',
  )
  // The failover completes: new sessions take writes; the connection kept since the refusal does
  // not, so the probe on it still says read-only, until the next refusal (past the hold-off) retires it.
  await readOnly(false)
  expect((await monitor.readiness())[0]!.problem).toContain('refuses writes')
  clock.at += 5_000
  expect(await write()).toBe('25006')
  expect(await write()).toBe('written')
  expect((await monitor.readiness())[0]!.problem).toBeNull()
  expect(handle.writes.refusingSince()).toBeNull()
  expect(lines.map((l) => [l.level, l.msg.split(' ').slice(0, 5).join(' ')])).toEqual([
    ['warn', 'the database refused a write'],
    ['info', 'the database takes writes again'],
  ])
})

test('an API-only process on a URL that names a standby is unready from its first probe, which sends one statement as before, and ready once the server takes writes', async () => {
  await readOnly(true)
  let at = 1_000_000
  h = openDb({ name: 'test', url: t.url, log: silentLogger, monotonicNow: () => at })
  const handle = h
  const sent: string[] = []
  const monitor = monitorOf(handle, { sent, monotonicNow: () => at })
  // No write refused yet, nothing else answered: the first probe finds it refusing writes.
  const [first] = await monitor.readiness()
  expect(first).toMatchObject({ reachable: true, migrated: true })
  expect(first!.problem).toStartWith('the database refuses writes (read-only: ')
  expect(sent.length).toBe(1)
  // An answer of the API's (a read) since does not stand for the question: the probe asks again.
  await sql`select 1`.execute(handle.db)
  at += 3_000
  expect((await monitor.readiness())[0]!.problem).toContain('refuses writes')
  expect(sent.length).toBe(2)
  // The server takes writes (a new connection: the pool's idle ones began read-only).
  await readOnly(false)
  await handle.close()
  h = openDb({ name: 'test', url: t.url, log: silentLogger, monotonicNow: () => at })
  sent.length = 0
  const fresh = monitorOf(h, { sent, monotonicNow: () => at })
  expect((await fresh.readiness())[0]!.problem).toBeNull()
  expect(sent.length).toBe(1)
  // Found taking writes, a probe within 5 s of an answer stands on it again: no statement.
  at += 1_000
  expect((await fresh.readiness())[0]!.problem).toBeNull()
  expect(sent.length).toBe(1)
})

test('serve --role api on a read-only database: the first /readyz is 503 saying it refuses writes', async () => {
  await readOnly(true)
  const config = loadConfig({
    DATABASE_URL: t.url,
    MAIL_TRANSPORT: 'discard',
    HOST: '127.0.0.1',
    PORT: '0',
    API_JWT_SECRET: 'k'.repeat(40),
  })
  const running = await serve(config, { role: 'api', log: silentLogger })
  try {
    const r = await fetch(`http://127.0.0.1:${running.port}/readyz`)
    const body = (await r.json()) as { databases: { problem: string | null }[] }
    expect([r.status, body.databases[0]?.problem?.split(' (')[0]]).toEqual([
      503,
      'the database refuses writes',
    ])
  } finally {
    await running.stop('test')
  }
})

test('a URL that names a standby for hours: the warning is repeated every 5 minutes while writes keep being refused (with how many and since when), as a database outage is, and its end says how many were refused', async () => {
  const { handle, clock, lines, write } = await openOnReadOnly('info')
  // A worker's claims refused every 55 s (one episode: never 60 s apart) for five and a half minutes.
  for (let i = 0; i < 7; i++) {
    if (i > 0) clock.at += 55_000
    expect(await write()).toBe('25006')
  }
  const warned = lines.filter((l) => l.level === 'warn')
  expect(warned).toEqual([
    expect.objectContaining({ msg: expect.stringContaining('refused a write as read-only') }),
    expect.objectContaining({
      msg: expect.stringContaining('refused a write as read-only'),
      db: 'test',
      failures: 7,
      sinceMs: 330_000,
    }),
  ])
  // The last refusal (past the hold-off) retired its connection: the next write opens a new one.
  await readOnly(false)
  clock.at += 5_000
  expect(await write()).toBe('written')
  // The probe's word: the episode is over.
  handle.writes.accepted()
  expect(lines.at(-1)).toMatchObject({
    level: 'info',
    msg: 'the database takes writes again',
    db: 'test',
    refusedMs: 335_000,
    refusedWrites: 7,
  })
  expect(lines.filter((l) => l.level === 'warn')).toHaveLength(2)
})

test('refusals more than a minute apart are two episodes, each logged as a start', async () => {
  const { clock, lines, write } = await openOnReadOnly('info')
  expect(await write()).toBe('25006')
  clock.at += 61_000
  expect(await write()).toBe('25006')
  const warned = lines.filter((l) => l.level === 'warn')
  expect(warned.map((l) => [l.msg.split(' ').slice(0, 5).join(' '), 'failures' in l])).toEqual([
    ['the database refused a write', false],
    ['the database refused a write', false],
  ])
})

test('a wall clock stepped forward while a standby refuses writes does not age the refusal readiness reports', async () => {
  await readOnly(true)
  // As serve wires them: the handle and the monitor on their default clocks.
  h = openDb({ name: 'test', url: t.url, log: silentLogger })
  const handle = h
  const monitor = monitorOf(handle)
  expect((await monitor.readiness())[0]!.problem).toContain('refuses writes (read-only: ')
  // NTP steps the system's wall clock an hour ahead.
  setSystemTime(new Date(Date.now() + 3_600_000))
  try {
    const [refusing] = await monitor.readiness()
    expect(refusing!.problem).toMatch(/ for [0-4]s: /)
  } finally {
    setSystemTime()
  }
})

test('a worker started on a standby: its first write, noting MAIL_FROM as a past sender before its first claim, fails as a claim does (25006, claims failing, the connection retired); once writes are taken it is noted and the row sent', async () => {
  h = openDb({ name: 'test', url: t.url, log: silentLogger })
  const row = await enqueue(t)
  await readOnly(true)
  e = createTestEngine(t, { handle: h })
  const engine = e
  engine.drainer.start()
  const failed = await engine.events.waitFor(
    (ev) => ev.type === 'loop_error' && ev.where === 'claim',
  )
  expect(failed.type === 'loop_error' && (failed.error as { code?: string }).code).toBe('25006')
  expect(engine.drainer.status().claimsFailing?.sqlstate).toBe('25006')
  expect(h.writes.refusingSince()).not.toBeNull()
  await readOnly(false)
  // The pool's connections opened meanwhile are read-only too, retired at the next refusal past the
  // hold-off; claims are retried after a growing pause (claim-failures.ts): a bound, not a target.
  await engine.events.waitFor(settledFor(row, 'sent'), 30_000)
  const { rows } = await t.pool.query('select mailbox from mailer.sender_mailboxes')
  expect(rows).toEqual([{ mailbox: 'sender@example.com' }])
})
