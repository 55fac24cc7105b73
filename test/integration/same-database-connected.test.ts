// MAILER_DATABASES naming one database twice in words its URLs do not show (127.0.0.1 and localhost, another role): check-config --connect and serve name both entries.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { checkConfig } from '../../src/check-config.ts'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { testCluster } from '../preload.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
let other: TestDb
beforeAll(async () => {
  t = await createTestDb()
  other = await createTestDb()
})
afterAll(async () => {
  await Promise.all([t.drop(), other.drop()])
})

/** The same server under its other loopback name (the cluster listens on 127.0.0.1; /etc/hosts maps localhost to it). */
function otherHostName(url: string): string {
  const u = new URL(url)
  u.hostname = u.hostname === 'localhost' ? '127.0.0.1' : 'localhost'
  return u.toString()
}

const sameDatabase = (problems: string[]) => problems.filter((p) => p.includes('same database'))

test('one database under two names, 127.0.0.1 and localhost, the second as a role of its own: a problem naming both entries', async () => {
  // A role that is no superuser, as a deployment's service role: pg_control_system() is PUBLIC's.
  const role = `same_db_${process.pid}`
  const password = `pw-${randomBytes(12).toString('hex')}`
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `create role ${role} login password '${password}'`)
  try {
    const second = new URL(otherHostName(t.url))
    second.username = role
    second.password = password
    const r = await checkConfig(
      {
        MAIL_TRANSPORT: 'discard',
        MAILER_DATABASES: JSON.stringify([
          { name: 'rpm', url: t.url },
          { name: 'billing', url: second.toString() },
        ]),
      },
      { connect: true, role: 'worker', timeoutMs: 10_000 },
    )
    const found = sameDatabase(r.problems)
    expect({
      found: found.length,
      names: found.map((p) => p.includes('"rpm"') && p.includes('"billing"')),
      problems: r.problems,
    }).toEqual({ found: 1, names: [true], problems: r.problems })
  } finally {
    await adminQuery(cluster.admin, `drop role if exists ${role}`)
  }
})

test('two databases of one server under two names are two: no such problem', async () => {
  const r = await checkConfig(
    {
      MAIL_TRANSPORT: 'discard',
      MAILER_DATABASES: JSON.stringify([
        { name: 'rpm', url: t.url },
        { name: 'billing', url: otherHostName(other.url) },
      ]),
    },
    { connect: true, role: 'worker', timeoutMs: 10_000 },
  )
  expect(sameDatabase([...r.problems, ...r.checks])).toEqual([])
  // The check did run: both reached.
  expect(r.checks.filter((c) => c.includes(': reachable, PostgreSQL')).length).toBe(2)
})

/** What serve (--role api) logs of two names of one database, with these entries. */
async function serveWarning(databases: { name: string; url: string }[]) {
  const lines: { level: string; msg: string; db?: string; alsoNamed?: string }[] = []
  const running = await serve(
    loadConfig({
      MAIL_TRANSPORT: 'discard',
      HOST: '127.0.0.1',
      PORT: '0',
      API_JWT_SECRET: randomBytes(32).toString('hex'),
      MAILER_DATABASES: JSON.stringify(databases),
    }),
    { role: 'api', log: createLogger('warn', (line) => lines.push(JSON.parse(line))) },
  )
  try {
    const said = await pollUntil(
      async () => lines.find((l) => l.msg.includes('names one database twice')),
      10_000,
    ).catch(() => undefined)
    return { level: said?.level, db: said?.db, alsoNamed: said?.alsoNamed }
  } finally {
    await running.stop('test')
  }
}

test('serve on one database under two names, 127.0.0.1 and localhost: a warning naming both', async () => {
  expect(
    await serveWarning([
      { name: 'rpm', url: t.url },
      { name: 'billing', url: otherHostName(t.url) },
    ]),
  ).toEqual({ level: 'warn', db: 'rpm', alsoNamed: 'billing' })
})

test('serve on one database under two names beside a third database away: the two are still named', async () => {
  // Nothing listens on port 1: that entry's reads fail (ECONNREFUSED) for as long as serve runs.
  const away = new URL(t.url)
  away.port = '1'
  expect(
    await serveWarning([
      { name: 'away', url: away.toString() },
      { name: 'rpm', url: t.url },
      { name: 'billing', url: otherHostName(t.url) },
    ]),
  ).toEqual({ level: 'warn', db: 'rpm', alsoNamed: 'billing' })
})
