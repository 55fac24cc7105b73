// A database URL that sets its own application_name: our sessions keep the names status and the docs find them by.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { checkDatabase } from '../../src/check-config/database-check.ts'
import { checkConfig } from '../../src/check-config.ts'
import type { Config } from '../../src/config.ts'
import { loadConfig } from '../../src/config.ts'
import { migrate } from '../../src/db/migrate.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { readDatabaseStatus } from '../../src/status/database-status.ts'
import { BUILD_HOOK_TIMEOUT_MS, compiledBinary, runBinary } from '../support/binary.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import {
  type SessionStartRecorder,
  startSessionStartRecorder,
} from '../support/session-start-recorder.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// As a hosted Postgres dashboard or a PgBouncer guide writes it into the URL.
const THEIRS = 'myapp'
const OURS = [
  'outbox-mailer',
  'outbox-mailer:listener',
  'outbox-mailer:listen-probe',
  'outbox-mailer:status',
  'outbox-mailer:check-config',
  'outbox-mailer:migrate',
]

let bin: string
let t: TestDb
beforeAll(async () => {
  ;[bin, t] = await Promise.all([compiledBinary(), createTestDb()])
}, BUILD_HOOK_TIMEOUT_MS)
afterAll(async () => {
  await t?.drop()
})

const named = (url: string, name = THEIRS) => {
  const u = new URL(url)
  u.searchParams.set('application_name', name)
  return u.href
}

/** Runs a worker on `env`'s databases until it listens, then `status --json` on the plain URL. */
async function statusBesideWorker(env: Record<string, string>) {
  const running = await serve(
    loadConfig({
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'outbox@example.com',
      HOST: '127.0.0.1',
      PORT: '0',
      ...env,
    }),
    { role: 'worker', log: silentLogger, sender: createFakeSender() },
  )
  try {
    await pollUntil(async () =>
      running.listeners.get('default')?.state() === 'listening' ? true : undefined,
    )
    const r = await runBinary(bin, ['status', '--json'], {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: t.url,
    })
    expect(r.stderr).toBe('')
    return JSON.parse(r.stdout).databases[0]
  } finally {
    await running.stop('test')
  }
}

test('status finds the LISTEN session of a worker whose DATABASE_URL sets application_name', async () => {
  const db = await statusBesideWorker({ DATABASE_URL: named(t.url) })
  expect(db.listener).toEqual({ sessions: 1 })
})

test('status finds the LISTEN session of a worker whose LISTEN_DATABASE_URL sets application_name', async () => {
  const db = await statusBesideWorker({
    DATABASE_URL: named(t.url),
    LISTEN_DATABASE_URL: named(t.url, 'myapp-direct'),
  })
  expect(db.listener).toEqual({ sessions: 1 })
})

test("every session of ours asks for our name, not the URL's: serve's, status's, check-config's, migrate's", async () => {
  const recorder: SessionStartRecorder = await startSessionStartRecorder(t.url)
  try {
    const url = named(recorder.url)
    const running = await serve(
      loadConfig({
        MAILER_DATABASES: JSON.stringify([{ name: 'default', url, listenUrl: url }]),
        MAIL_TRANSPORT: 'discard',
        MAIL_FROM: 'outbox@example.com',
        HOST: '127.0.0.1',
        PORT: '0',
      }),
      { role: 'worker', log: silentLogger, sender: createFakeSender() },
    )
    try {
      await pollUntil(async () =>
        running.listeners.get('default')?.state() === 'listening' ? true : undefined,
      )
    } finally {
      await running.stop('test')
    }
    const d = { name: 'default', url, listenUrl: url }
    expect(
      (
        await readDatabaseStatus(d, {
          timeoutMs: 10_000,
          leaseSeconds: 30,
        })
      ).error,
    ).toBeNull()
    const config = { databases: [d], worker: { listenMode: 'auto' } } as unknown as Config
    expect((await checkDatabase(d, config, 'worker', 10_000)).problems).toEqual([])
    expect((await migrate({ url, log: silentLogger })).applied).toEqual([])
    const names = new Set(recorder.starts().map((s) => s.applicationName))
    // The pool, the LISTEN session and its probe's; status's; check-config's; migrate's.
    expect([...names].sort()).toEqual([...OURS].sort())
  } finally {
    await recorder.close()
  }
})

const WARNING =
  'sets application_name, which outbox-mailer does not take: its sessions name themselves outbox-mailer, and outbox-mailer:listener for the LISTEN session (as status and pg_stat_activity queries find them)'

test('a start whose URL sets application_name says once per URL that ours are kept, naming the variable; a plain URL says nothing', async () => {
  const warned = async (env: Record<string, string>) => {
    const lines: string[] = []
    const running = await serve(
      loadConfig({ MAIL_TRANSPORT: 'discard', HOST: '127.0.0.1', PORT: '0', ...env }),
      {
        role: 'worker',
        log: createLogger('warn', (l) => lines.push(l)),
        sender: createFakeSender(),
      },
    )
    await running.stop('test')
    return lines
      .map((l) => JSON.parse(l))
      .filter((l) => String(l.msg).includes('application_name'))
      .map((l) => [l.msg, l.db, l.variable])
  }
  const msg = `the database URL ${WARNING}`
  expect(await warned({ DATABASE_URL: named(t.url) })).toEqual([[msg, 'default', 'DATABASE_URL']])
  expect(
    await warned({ DATABASE_URL: named(t.url), LISTEN_DATABASE_URL: named(t.url, 'direct') }),
  ).toEqual([
    [msg, 'default', 'DATABASE_URL'],
    [msg, 'default', 'LISTEN_DATABASE_URL'],
  ])
  expect(await warned({ DATABASE_URL: t.url, LISTEN_DATABASE_URL: t.url })).toEqual([])
})

test('check-config warns of each URL that sets application_name, by its variable', async () => {
  const checks = async (env: Record<string, string>) =>
    (await checkConfig({ MAIL_TRANSPORT: 'discard', ...env }, { connect: false, role: 'worker' }))
      .checks
  const only = named('postgres://h/db')
  expect(await checks({ DATABASE_URL: only })).toContain(`warning: DATABASE_URL ${WARNING}`)
  const listed = await checks({
    MAILER_DATABASES: JSON.stringify([
      { name: 'shop', url: 'postgres://h/shop', listenUrl: named('postgres://h/shop') },
      { name: 'crm', url: named('postgres://h/crm') },
    ]),
  })
  expect(listed.filter((c) => c.includes('application_name'))).toEqual([
    `warning: MAILER_DATABASES shop.listenUrl ${WARNING}`,
    `warning: MAILER_DATABASES crm.url ${WARNING}`,
  ])
  expect(
    (await checks({ DATABASE_URL: 'postgres://h/db' })).filter((c) =>
      c.includes('application_name'),
    ),
  ).toEqual([])
})
