// serve's start: the LISTEN session opens beside the schema check, and a refused start leaves nothing open.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { loadConfig } from '../../src/config.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { startTcpProxy } from '../api/support/tcp-proxy.ts'
import { testCluster } from '../preload.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { alertRuleProblems, guideAlertRules } from '../support/guide-alert-rules.ts'
import { adminQuery } from '../support/postgres.ts'
import { withRoleRefusedConnect } from '../support/refused-connect-role.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// How long an answer of the database stands for readiness (src/outbox/health-monitor.ts).
const READINESS_PROOF_MS = 5_000

let migrated: TestDb
let bare: TestDb
let outdated: TestDb
let spare: TestDb

beforeAll(async () => {
  ;[migrated, bare, outdated, spare] = await Promise.all([
    createTestDb(),
    createTestDb(),
    createTestDb(),
    createTestDb(),
  ])
  await bare.pool.query('drop schema mailer cascade')
  // As if this binary were newer than the database's last migrate.
  await outdated.pool.query(
    'delete from mailer.schema_migrations where version = (select max(version) from mailer.schema_migrations)',
  )
  // The test's own pools would be counted among ours.
  await Promise.all([bare.pool.end(), outdated.pool.end(), spare.pool.end()])
})
afterAll(async () => {
  await Promise.all([migrated.drop(), bare.drop(), outdated.drop(), spare.drop()])
})

const configFor = (url: string, env: Record<string, string> = {}) =>
  loadConfig({
    DATABASE_URL: url,
    MAIL_TRANSPORT: 'discard',
    MAIL_FROM: 'outbox@example.com',
    HOST: '127.0.0.1',
    PORT: '0',
    ...env,
  })

/**
 * A refused start must close every connection it opened. The client side says so at once (a
 * proxy in between sees each close); the server's count follows. pg_stat_activity alone cannot
 * be asked "none left" at one instant: a backend still authenticating when its client left is
 * invisible, then shows idle for a moment before it reads the close and exits.
 */
async function expectNoSessionLeft(t: TestDb, refusedStart: (url: string) => Promise<unknown>) {
  const target = new URL(t.url)
  const proxy = await startTcpProxy(target.hostname, Number(target.port))
  const viaProxy = new URL(t.url)
  viaProxy.hostname = '127.0.0.1'
  viaProxy.port = String(proxy.port)
  try {
    await refusedStart(viaProxy.href)
    // It did connect (the listener, the schema check), so "none open" below means something.
    expect(proxy.acceptedConnections()).toBeGreaterThan(0)
    await pollUntil(async () => (proxy.openConnections() === 0 ? true : undefined), 5_000)
    await pollUntil(async () => ((await ourSessions(t)) === 0 ? true : undefined), 5_000)
  } finally {
    await proxy.close()
  }
}

/** Sessions of ours on the database (the pool's and the listener's). */
async function ourSessions(t: TestDb): Promise<number> {
  const r = await migrated.pool.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity
      where datname = $1 and application_name like 'outbox-mailer%'`,
    [new URL(t.url).pathname.slice(1)],
  )
  return r.rows[0]!.n
}

test.each([
  ['without the schema', () => bare, 'schema_missing'],
  ['with an outdated schema', () => outdated, 'schema_outdated'],
] as const)(
  'a database %s refuses the start and keeps no session open, the listener’s included',
  async (_, db, code) => {
    // The listener was connecting while the schema was read: it must have been stopped, not left
    // reconnecting to a database this process will never serve; nor may the pool keep the
    // connection the schema was read on.
    await expectNoSessionLeft(db(), async (url) => {
      const start = serve(configFor(url), { role: 'worker', log: silentLogger })
      await expect(start).rejects.toMatchObject({ code })
    })
  },
)

test('a start on a current schema is ready with its listener listening, and sends, counted in /metrics', async () => {
  const sender = createFakeSender()
  const running = await serve(configFor(migrated.url), {
    role: 'worker',
    log: silentLogger,
    sender,
  })
  try {
    const ready = await pollUntil(async () => {
      const r = await fetch(`http://127.0.0.1:${running.port}/readyz`)
      return r.status === 200 ? r : undefined
    })
    expect(ready.status).toBe(200)
    expect(running.listeners.get('default')?.state()).toBe('listening')
    const id = await enqueue(migrated)
    await pollUntil(async () => (sender.calls.some((m) => m.outboxId === id) ? true : undefined))
    expect(sender.calls.map((m) => m.outboxId)).toEqual([id])
    // The engine's events reach the metrics: the send is counted once it is recorded.
    const sent = 'outbox_sends_total{db="default",outcome="sent"} 1'
    await pollUntil(async () => {
      const text = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text()
      return text.includes(sent) ? true : undefined
    })
  } finally {
    await running.stop('test')
  }
})

test('a worker exports the deploy guide’s alert counters at 0 from its start (the first failure after a start is an increase), and every series its rules name, with their labels; an api process exports no counter', async () => {
  // Prometheus' increase() over a series that first appears at 1 is 0: a counter created at its
  // first event hides that event from "Sends failing", "Leases lost" and "Mailbox throttled".
  const zero = [
    ...['sent', 'retry', 'throttled', 'failed', 'expired', 'cancelled', 'lease_lost'].map(
      (outcome) => `outbox_sends_total{db="default",outcome="${outcome}"} 0`,
    ),
    ...['graph', 'entra'].flatMap((service) =>
      ['throttled', 'unavailable', 'unreachable', 'other'].map(
        (cause) =>
          `outbox_graph_throttled_total{db="default",cause="${cause}",service="${service}"} 0`,
      ),
    ),
    'outbox_graph_mailbox_refused_total{db="default"} 0',
    'outbox_leases_reclaimed_total{db="default"} 0',
    'outbox_leases_lost_total{db="default"} 0',
    'outbox_loop_errors_total{db="default"} 0',
  ]
  const scrape = async (role: 'worker' | 'api') => {
    const running = await serve(
      configFor(migrated.url, { API_JWT_SECRET: randomBytes(24).toString('hex') }),
      {
        role,
        log: silentLogger,
        sender: createFakeSender(),
      },
    )
    try {
      return (await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text()).split('\n')
    } finally {
      await running.stop('test')
    }
  }
  const worker = await scrape('worker')
  expect(zero.filter((line) => !worker.includes(line))).toEqual([])
  // Every series the guide's rules name is there, with the labels they match and pair by.
  expect(guideAlertRules().map((r) => r.alert)).toContain('Mailbox refused')
  expect(await alertRuleProblems(worker)).toEqual([])
  const api = await scrape('api')
  expect(
    api.filter((line) =>
      /^outbox_(sends|leases|loop_errors|graph_throttled|graph_mailbox_refused)/.test(line),
    ),
  ).toEqual([])
})

test('idle scrapes that reuse an empty outbox’s numbers still count a row inserted since (the listener’s events reach the metrics)', async () => {
  await migrated.reset()
  const notified = boundedLatches(20_000).make('the enqueued row’s notification heard')
  const running = await serve(configFor(migrated.url), {
    role: 'worker',
    log: silentLogger,
    onEvent: (e) => {
      if (e.type === 'notification') notified.resolve()
    },
  })
  const pending = (n: number) => `outbox_rows{db="default",status="pending"} ${n}`
  const scrape = async () => (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text()
  try {
    await pollUntil(async () => {
      const r = await fetch(`http://127.0.0.1:${running.port}/readyz`)
      return r.status === 200 ? true : undefined
    })
    expect(await scrape()).toContain(pending(0))
    // Due in an hour: it stays pending, and only its insert's notification says it is there.
    await migrated.pool.query(
      `select mailer.enqueue_email('{"to": "a@example.com", "subject": "s", "text": "t"}',
                                   jsonb_build_object('sendAt', now() + interval '1 hour'))`,
    )
    await notified.wait()
    expect(await scrape()).toContain(pending(1))
  } finally {
    await running.stop('test')
  }
})

test('readiness standing on a recent answer still turns 503 at once when the database goes away, and 200 when it is back', async () => {
  const target = new URL(migrated.url)
  const proxy = await startTcpProxy(target.hostname, Number(target.port))
  const viaProxy = new URL(migrated.url)
  viaProxy.hostname = '127.0.0.1'
  viaProxy.port = String(proxy.port)
  const running = await serve(configFor(viaProxy.href), { role: 'worker', log: silentLogger })
  const readyz = async () => (await fetch(`http://127.0.0.1:${running.port}/readyz`)).status
  try {
    await pollUntil(async () => ((await readyz()) === 200 ? true : undefined))
    // A statement of the worker answers (a scrape's read): the next probes stand on it for 5 s
    // (READINESS_PROOF_MS) from that answer, which came after `asked` ...
    const asked = performance.now()
    expect(await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text()).toContain(
      'outbox_database_up{db="default"} 1',
    )
    proxy.down()
    // ... but the LISTEN session dropped with the database: unready before that answer could have
    // aged out, so without waiting out the 5 s. Bounded by the answer's own age, not by a shorter
    // poll (2 s: a drop seen 2.1 s late on a loaded machine failed it, and proved nothing more).
    const standsUntil = asked + READINESS_PROOF_MS
    await pollUntil(async () => ((await readyz()) === 503 ? true : undefined), 20_000, 10)
    expect(performance.now()).toBeLessThan(standsUntil)
    proxy.up()
    await pollUntil(async () => ((await readyz()) === 200 ? true : undefined), 20_000)
  } finally {
    await running.stop('test')
    await proxy.close()
  }
})

test('the listener series is exported by a worker that listens, not by one declared poll-only', async () => {
  const series = async (env: Record<string, string>) => {
    const running = await serve(configFor(migrated.url, env), { role: 'worker', log: silentLogger })
    try {
      await pollUntil(async () => {
        const r = await fetch(`http://127.0.0.1:${running.port}/readyz`)
        return r.status === 200 ? true : undefined
      })
      const text = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text()
      return text.split('\n').filter((l) => l.startsWith('outbox_listener_connected'))
    } finally {
      await running.stop('test')
    }
  }
  expect(await series({})).toEqual(['outbox_listener_connected{db="default"} 1'])
  expect(await series({ LISTEN_MODE: 'poll' })).toEqual([])
})

test('METRICS_PORT serves /metrics there only, and a start failing on the main port closes it again', async () => {
  // METRICS_PORT=0: the system's choice, given back by onListening (and the listening line).
  let metricsPort: number | null = null
  const running = await serve(configFor(migrated.url, { METRICS_PORT: '0' }), {
    role: 'worker',
    log: silentLogger,
    onListening: (bound) => {
      metricsPort = bound.metricsPort
    },
  })
  try {
    expect(metricsPort).toBeGreaterThan(0)
    const apart = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    expect(apart.status).toBe(200)
    expect(await apart.text()).toContain('outbox_database_up{db="default"} 1')
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${running.port}/metrics`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${running.port}/readyz`)).status).not.toBe(404)
  } finally {
    await running.stop('test')
  }
  // The metrics listener starts first: a main port that is taken must not leave it behind. Its port
  // is named here (to look at afterwards), so one another run takes before the start binds it (the
  // refusal then names METRICS_PORT) is chosen again.
  const taken = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('taken') })
  try {
    let again = 0
    for (let tries = 1; ; tries++) {
      again = await free()
      const config = {
        ...configFor(spare.url),
        http: { host: '127.0.0.1', port: taken.port!, metricsPort: again },
      }
      const refusal = await serve(config, { role: 'worker', log: silentLogger }).then(
        () => 'started',
        (e: Error) => e.message,
      )
      if (refusal.includes('(HOST, METRICS_PORT)') && tries < 3) continue
      expect(refusal).toStartWith(`cannot listen on 127.0.0.1:${taken.port} (HOST, PORT)`)
      break
    }
    await expect(fetch(`http://127.0.0.1:${again}/metrics`)).rejects.toThrow()
  } finally {
    await taken.stop(true)
  }
})

const API_MAIL_FROM_WARNING =
  'MAIL_FROM is no address a worker could send from (MAIL_FROM: must be an e-mail address ("Name <address>" is fine) or a Graph user id (a GUID)): serve --role api sends nothing and starts, but GET /v1/outbox/{id} cannot tell from it the sender of a row naming none (rendered.from null, fromNote says why), and a worker refuses to start with it: set it to the workers\' MAIL_FROM, or unset it'

/** A port free when looked at: only where the test must know it before the start binds it. */
async function free() {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = probe.port!
  await probe.stop(true)
  return port
}

test('a start with the file or discard transport and no MAIL_FROM warns once that rows naming no sender fail; with one, or as api, it does not', async () => {
  const warnings = async (env: Record<string, string>, role: 'worker' | 'api') => {
    const lines: string[] = []
    const running = await serve(configFor(migrated.url, env), {
      role,
      log: createLogger('warn', (l) => lines.push(l)),
    })
    await running.stop('test')
    return lines.map((l) => JSON.parse(l)).filter((l) => String(l.msg).includes('MAIL_FROM'))
  }
  const unset = await warnings({ MAIL_FROM: '' }, 'worker')
  expect(unset).toEqual([
    expect.objectContaining({
      level: 'warn',
      msg: 'MAIL_FROM is not set: a row that names no "from" fails with code no_sender',
      transport: 'discard',
    }),
  ])
  expect(await warnings({}, 'worker')).toEqual([])
  // An API-only process sends nothing: MAIL_FROM is not its concern.
  expect(await warnings({ MAIL_FROM: '', API_JWT_SECRET: 'k'.repeat(40) }, 'api')).toEqual([])
})

test('--role api with a MAIL_FROM that is no address warns once at start: its rows naming no sender show from null; with none, or one a worker could send from, it does not', async () => {
  const warnings = async (mailFrom: string | undefined) => {
    const lines: string[] = []
    const env: Record<string, string> = {
      DATABASE_URL: migrated.url,
      MAIL_TRANSPORT: 'graph',
      API_JWT_SECRET: 'k'.repeat(40),
      HOST: '127.0.0.1',
      PORT: '0',
      ...(mailFrom === undefined ? {} : { MAIL_FROM: mailFrom }),
    }
    const running = await serve(loadConfig(env, { role: 'api', servesApi: true }), {
      role: 'api',
      log: createLogger('warn', (l) => lines.push(l)),
    })
    await running.stop('test')
    return lines.map((l) => JSON.parse(l)).filter((l) => String(l.msg).includes('MAIL_FROM'))
  }
  expect(await warnings('Outbox <outbox@>')).toEqual([
    expect.objectContaining({ level: 'warn', msg: API_MAIL_FROM_WARNING }),
  ])
  // Never the value: a MAIL_FROM is an address.
  expect(JSON.stringify(await warnings('Outbox <outbox@>'))).not.toContain('outbox@')
  expect(await warnings(undefined)).toEqual([])
  expect(await warnings('Outbox <outbox@example.com>')).toEqual([])
})

test('a start that fails after its workers began (the port taken) stops them and keeps no session open', async () => {
  const taken = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('taken') })
  try {
    await expectNoSessionLeft(spare, async (url) => {
      const config = {
        ...configFor(url),
        http: { host: '127.0.0.1', port: taken.port!, metricsPort: null },
      }
      // Bun's own message guesses at the port and names neither; ours says where it tried to listen.
      const start = serve(config, { role: 'worker', log: silentLogger })
      await expect(start).rejects.toThrow(`cannot listen on 127.0.0.1:${taken.port} (HOST, PORT)`)
    })
  } finally {
    await taken.stop()
  }
})

test('a METRICS_PORT taken is named as METRICS_PORT, not as PORT', async () => {
  const taken = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('taken') })
  try {
    const config = {
      ...configFor(spare.url),
      http: { host: '127.0.0.1', port: 0, metricsPort: taken.port! },
    }
    // The operator who reads PORT checks a port that is free.
    const start = serve(config, { role: 'worker', log: silentLogger })
    await expect(start).rejects.toThrow(
      `cannot listen on 127.0.0.1:${taken.port} (HOST, METRICS_PORT)`,
    )
  } finally {
    await taken.stop(true)
  }
})

test('a stop does not wait for a LISTEN session still connecting: claims end at once and the connect is dropped', async () => {
  // A direct URL whose server accepts and never answers (a blackholed route): the listener sits in
  // its connect, which gives up only after 10 s, while Fly's kill_timeout leaves 10 s past the grace.
  const sockets: Socket[] = []
  let socketClosed = false
  const silent = createServer((s) => {
    sockets.push(s)
    // Read (and ignore) the startup message: a socket never read never sees its peer's close.
    s.resume()
    s.on('close', () => {
      socketClosed = true
    })
  })
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
  const port = (silent.address() as AddressInfo).port
  const listenUrl = new URL(migrated.url)
  listenUrl.hostname = '127.0.0.1'
  listenUrl.port = String(port)
  const running = await serve(configFor(migrated.url, { LISTEN_DATABASE_URL: listenUrl.href }), {
    role: 'worker',
    log: silentLogger,
  })
  try {
    await pollUntil(async () => (sockets.length > 0 ? true : undefined), 5_000)
    expect(running.listeners.get('default')?.state()).toBe('connecting')
    const stopped = running.stop('test')
    // The worker stops claiming with the stop, not after the listener's connect gives up ...
    await pollUntil(
      async () => (running.drainers.get('default')?.status().running === false ? true : undefined),
      5_000,
    )
    // ... and the connect in progress is abandoned rather than waited out.
    await pollUntil(async () => (socketClosed ? true : undefined), 5_000)
    await stopped
    expect(running.listeners.get('default')?.state()).toBe('stopped')
  } finally {
    await running.stop('test')
    for (const s of sockets) s.destroy()
    silent.close()
  }
})

test('a role refused CONNECT on the database (42501): the start says the role was refused, not that the database is unreachable, and /readyz names the grant', async () => {
  await withRoleRefusedConnect(await testCluster(), spare.url, 'serve_noconnect', async (url) => {
    const lines: { level: string; msg: string; db?: string; sqlstate?: string }[] = []
    const running = await serve(configFor(url.href), {
      role: 'worker',
      log: createLogger('warn', (l) => lines.push(JSON.parse(l))),
    })
    try {
      const atStart = lines.filter((l) => l.msg.includes('at start'))
      expect(atStart).toEqual([
        expect.objectContaining({
          level: 'warn',
          msg: "the database refused this service's role a privilege at start (SQLSTATE 42501): grant it CONNECT on the database and its rights on schema mailer; will keep trying",
          db: 'default',
          sqlstate: '42501',
        }),
      ])
      const r = await fetch(`http://127.0.0.1:${running.port}/readyz`)
      const body = (await r.json()) as { databases: { reachable: boolean; problem: string }[] }
      expect(r.status).toBe(503)
      expect(body.databases[0]).toMatchObject({
        reachable: true,
        problem: expect.stringMatching(
          /^the database refused this service's role a privilege \(SQLSTATE 42501: permission denied for database "?\w+"?\): grant it CONNECT on the database and its rights on schema mailer$/,
        ),
      })
    } finally {
      await running.stop('test')
    }
  })
})

test.each([
  ['a wrong password', '28P01', 'the password was refused (or the role does not exist)'],
  ['a role that may not log in', '28000', 'the role may not log in'],
  ['a database that does not exist', '3D000', 'the database does not exist'],
] as const)(
  'a login refused at start for %s: the start and /readyz name the cause (SQLSTATE %s), not an unreachable database, and no line holds the password',
  async (_, sqlstate, cause) => {
    const cluster = await testCluster()
    const role = `serve_login_${sqlstate.toLowerCase()}_${process.pid}`
    const password = `pw-${randomBytes(12).toString('hex')}`
    const login = sqlstate === '28000' ? 'nologin' : 'login'
    await adminQuery(cluster.admin, `create role ${role} ${login} password '${password}'`)
    try {
      const url = new URL(spare.url)
      url.username = role
      url.password = sqlstate === '28P01' ? `${password}-not` : password
      if (sqlstate === '3D000') url.pathname = `/no_such_db_${process.pid}`
      const raw: string[] = []
      const running = await serve(configFor(url.href, { API_JWT_SECRET: 'k'.repeat(40) }), {
        role: 'api',
        log: createLogger('debug', (l) => raw.push(l)),
      })
      try {
        const lines = raw.map((l) => JSON.parse(l) as { level: string; msg: string })
        const atStart = lines.filter((l) => l.msg.includes('at start'))
        expect(atStart).toEqual([
          expect.objectContaining({
            level: 'warn',
            msg: expect.stringMatching(
              new RegExp(
                `^the database refused this service's connection at start \\(SQLSTATE ${sqlstate}: ${cause.replace(/[()]/g, '\\$&')}[^)]*\\): .+; will keep trying$`,
              ),
            ),
            db: 'default',
            sqlstate,
          }),
        ])
        const r = await fetch(`http://127.0.0.1:${running.port}/readyz`)
        const body = (await r.json()) as { databases: { reachable: boolean; problem: string }[] }
        expect(r.status).toBe(503)
        expect(body.databases[0]?.reachable).toBe(true)
        expect(body.databases[0]?.problem).toStartWith(
          `the database refused this service's connection (SQLSTATE ${sqlstate}: ${cause}`,
        )
        expect(raw.filter((l) => l.includes(password))).toEqual([])
      } finally {
        await running.stop('test')
      }
    } finally {
      await adminQuery(cluster.admin, `drop role if exists ${role}`)
    }
  },
)
