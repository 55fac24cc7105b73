// A worker's LISTEN session asks the server for a TCP keepalive of its own: a vanished machine's session, and the liveness lock it holds, end within a minute, not the system's 2 hours.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import type { Listener } from '../../src/outbox/listener.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { hookedSession } from '../support/hooked-session.ts'
import { loneListener } from '../support/lone-listener.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** The server's keepalive settings as the session on `client` reads them (pg_settings: base units). */
async function keepaliveOf(client: pg.Client) {
  const { rows } = await client.query<{ name: string; setting: string }>(
    `select name, setting from pg_settings
      where name in ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',
                     'tcp_user_timeout')
      order by name`,
  )
  return Object.fromEntries(rows.map((r) => [r.name, Number(r.setting)]))
}

/** The listener's session once it holds its holder's liveness lock: its backend pid. */
const lockHeld = (listener: Listener) =>
  pollUntil(async () => listener.holderLockPid() ?? undefined, 10_000)

const pidOf = async (client: pg.Client) =>
  (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid

// LISTEN_CHECK_SECONDS' default (15 s): a live worker notices a cut within two checks and 10 s
// (40 s), so the server gives a silent client up after 60 s, not before.
const AT_DEFAULT_CHECKS = {
  tcp_keepalives_count: 3,
  tcp_keepalives_idle: 30,
  tcp_keepalives_interval: 10,
  tcp_user_timeout: 60_000,
}

test('a LISTEN session of its own holds the liveness lock with the server keepalive set on it', async () => {
  // The listener's own client is out of the test's reach: its LISTEN statement names it.
  const plainQuery = pg.Client.prototype.query
  let listening: pg.Client | undefined
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (args[0] === 'listen mailer_outbox') listening = this
    return (plainQuery as (...a: unknown[]) => unknown).apply(this, args)
  } as typeof pg.Client.prototype.query
  cleanups.push(async () => {
    pg.Client.prototype.query = plainQuery
  })
  const { listener, listening: started } = loneListener(t.url, {
    holder: 'keepalive-own',
    checkIntervalMs: 15_000,
  })
  cleanups.push(() => listener.stop())
  await started()
  const pid = await lockHeld(listener)
  pg.Client.prototype.query = plainQuery
  expect(await pidOf(listening!)).toBe(pid)
  expect(await keepaliveOf(listening!)).toEqual(AT_DEFAULT_CHECKS)
})

test('a shared LISTEN session, and a longer LISTEN_CHECK_SECONDS, gives a silent client up past two checks', async () => {
  const h = openDb({ name: 'keepalive', url: t.url, log: silentLogger, shareListenSession: true })
  cleanups.push(() => h.close())
  let listening: pg.Client | undefined
  const session = hookedSession(h.listenSession!, ({ client, text, run }) => {
    if (text === 'listen mailer_outbox') listening = client
    return run()
  })
  const { listener, listening: started } = loneListener(t.url, {
    holder: 'keepalive-shared',
    shared: session,
    checkIntervalMs: 60_000,
  })
  cleanups.push(() => listener.stop())
  await started()
  const pid = await lockHeld(listener)
  // In the owner's turn: the session carries the route's statements (its prime) meanwhile.
  const read = await session.inTurn(async () => ({
    pid: await pidOf(listening!),
    keepalive: await keepaliveOf(listening!),
  }))
  expect(read.pid).toBe(pid)
  // Two checks and 20 s (140 s), to a multiple of 6 s: half idle, three probes 24 s apart.
  expect(read.keepalive).toEqual({
    tcp_keepalives_count: 3,
    tcp_keepalives_idle: 72,
    tcp_keepalives_interval: 24,
    tcp_user_timeout: 144_000,
  })
})

test('a session that refuses the keepalive still listens and holds the lock, and the worker says so once', async () => {
  const lines: { level: string; msg: string }[] = []
  const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
  const h = openDb({ name: 'keepalive', url: t.url, log, shareListenSession: true })
  cleanups.push(() => h.close())
  const session = hookedSession(h.listenSession!, ({ text, run }) =>
    text.includes('tcp_keepalives_idle') ? Promise.reject(new Error('refused by a proxy')) : run(),
  )
  const { listener, listening: started } = loneListener(t.url, {
    holder: 'keepalive-refused',
    shared: session,
    log,
  })
  cleanups.push(() => listener.stop())
  await started()
  const first = await lockHeld(listener)
  // The session's end: the next one refuses it too, and is not told of again.
  await t.pool.query('select pg_terminate_backend($1)', [first])
  await pollUntil(async () => {
    const pid = listener.holderLockPid()
    return pid !== null && pid !== first ? pid : undefined
  }, 10_000)
  const told = lines.filter((l) => l.msg.includes('TCP keepalive'))
  expect(told.map((l) => l.level)).toEqual(['warn'])
})

test('a stop while the keepalive ask is unanswered ends the session there: no liveness lock taken, never listening', async () => {
  const h = openDb({ name: 'keepalive', url: t.url, log: silentLogger, shareListenSession: true })
  cleanups.push(() => h.close())
  const asked = Promise.withResolvers<void>()
  const answer = Promise.withResolvers<void>()
  const sent: string[] = []
  const session = hookedSession(h.listenSession!, async ({ text, run }) => {
    sent.push(text)
    if (!text.includes('tcp_keepalives_idle')) return run()
    // The server slow to answer it (a database under load): held until the stop has begun.
    asked.resolve()
    await answer.promise
    return run()
  })
  let wakes = 0
  const { listener, events } = loneListener(t.url, {
    holder: 'keepalive-stopped',
    shared: session,
    wake: () => {
      wakes++
    },
  })
  listener.start()
  await asked.promise
  const stopped = listener.stop()
  answer.resolve()
  await stopped
  expect({
    lockTakes: sent.filter((s) => s.includes('pg_try_advisory_lock')).length,
    listening: events.events.some((e) => e.type === 'listener' && e.state === 'listening'),
    wakes,
  }).toEqual({ lockTakes: 0, listening: false, wakes: 0 })
})
