// A URL that leads nowhere (a port nothing listens on, a host name that does not resolve): check-config --connect and migrate say what to look at, as /readyz does.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { checkConfig } from '../../src/check-config.ts'
import { loadConfig } from '../../src/config.ts'
import { migrateEvery } from '../../src/db/migrate-every.ts'
import { EXIT } from '../../src/errors.ts'
import { silentLogger } from '../../src/log.ts'
import { readDatabaseStatus } from '../../src/status/database-status.ts'
import { judge } from '../../src/status/status-report.ts'
import { closedPort } from '../support/closed-port.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const REFUSED = "nothing accepts connections at the URL's host and port"
const UNRESOLVED = "the URL's host name does not resolve"

async function urls() {
  return {
    closed: `postgres://app@127.0.0.1:${await closedPort()}/app`,
    // .invalid never resolves (RFC 6761).
    unresolved: 'postgres://app@db.outbox-mailer.invalid:5432/app',
  }
}

test('check-config --connect names a refused port and an unresolvable host with what each means', async () => {
  const { closed, unresolved } = await urls()
  const said = []
  for (const url of [closed, unresolved]) {
    const r = await checkConfig(
      { MAIL_TRANSPORT: 'discard', DATABASE_URL: url },
      { connect: true, role: 'api', timeoutMs: 5000 },
    )
    said.push(r.problems.filter((p) => p.includes('cannot connect')).join('\n'))
  }
  expect([said[0]!.includes(REFUSED), said[1]!.includes(UNRESOLVED), said]).toEqual([
    true,
    true,
    said,
  ])
})

test('migrate names them too, database by database (the release command’s line in a failed deploy)', async () => {
  const { closed, unresolved } = await urls()
  const err: string[] = []
  const config = loadConfig(
    {
      MAILER_DATABASES: JSON.stringify([
        { name: 'closed', url: closed },
        { name: 'nowhere', url: unresolved },
      ]),
    },
    { role: 'api' },
  )
  const exit = await migrateEvery(config, silentLogger, { out: () => {}, err: (l) => err.push(l) })
  expect({
    exit,
    closed: err.some((l) => l.startsWith('closed (') && l.includes(REFUSED)),
    nowhere: err.some((l) => l.startsWith('nowhere (') && l.includes(UNRESOLVED)),
    err,
  }).toEqual({ exit: EXIT.failure, closed: true, nowhere: true, err })
})

test('status names them too, in its reason for the database (a watch reading it by hand or in a check)', async () => {
  const { closed, unresolved } = await urls()
  const reasons: string[] = []
  for (const url of [closed, unresolved]) {
    const reading = await readDatabaseStatus(
      { name: 'default', url, listenUrl: url },
      { timeoutMs: 5000, leaseSeconds: 60 },
    )
    const judged = judge(reading, { maxPendingAgeSeconds: 300, leaseSeconds: 60 }, (s) => s)
    reasons.push(judged.reasons.join('; '))
  }
  expect([reasons[0]!.includes(REFUSED), reasons[1]!.includes(UNRESOLVED), reasons]).toEqual([
    true,
    true,
    reasons,
  ])
})
