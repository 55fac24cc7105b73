// The LISTEN probe (a notification from a second session) must not cost a worker that may hold one connection its LISTEN.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createListener } from '../../src/outbox/listener.ts'
import { testCluster } from '../preload.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { createEventLog } from '../support/events.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const role = `outbox_one_${process.pid}`
const password = crypto.randomUUID()
let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
  await adminQuery(t.url, `create role ${role} login connection limit 1 password '${password}'`)
})
afterAll(async () => {
  await t.drop()
  await adminQuery((await testCluster()).url('postgres'), `drop role if exists ${role}`)
})

test('a role allowed one connection still listens: the probe, unable to open a second session, trusts the first', async () => {
  const url = new URL(t.url)
  url.username = role
  url.password = password
  const events = createEventLog()
  const listener = createListener({
    db: 'test',
    url: url.toString(),
    log: silentLogger,
    clock: systemClock,
    wake: () => {},
    onEvent: events.handler,
    checkIntervalMs: 600_000,
    checkTimeoutMs: 1000,
    maxBackoffMs: 500,
    mode: 'auto',
  })
  try {
    listener.start()
    await events.waitFor((e) => e.type === 'listener' && e.state === 'listening', 10_000)
    expect(listener.state()).toBe('listening')
  } finally {
    await listener.stop()
  }
})
