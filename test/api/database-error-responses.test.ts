// A request a trigger refuses with the row's address in its words: the log line and the 500 name the server's error, never quote it.
import { afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import {
  dropQuotingTrigger,
  QUOTING_TRIGGER_NAMES,
  refuseQuotingRow,
} from '../support/row-quoting-trigger.ts'
import { type App, appOnDefault, enqueueSql, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const lines: string[] = []
let app: App
let tk: string

beforeAll(async () => {
  app = appOnDefault(t, { log: createLogger('debug', (l) => lines.push(l)) }).app
  tk = await token()
})

afterEach(async () => {
  lines.length = 0
  await dropQuotingTrigger(t.pool)
})

/** The request's answer and lines: neither quotes `address`; the 500 keeps its fixed code. */
async function refusedWithout(address: string, method: string, path: string, body?: unknown) {
  const res = await send(app, method, path, { token: tk, body })
  expect(res.status).toBe(500)
  expect(res.body).toMatchObject({ title: 'internal', status: 500 })
  expect(JSON.stringify(res.body)).not.toContain(address)
  expect(lines.filter((l) => l.includes(address))).toEqual([])
  const line = lines.find((l) => l.includes('"msg":"unhandled request error"'))
  expect(JSON.parse(line!).err).toMatchObject({ code: 'P0042', ...QUOTING_TRIGGER_NAMES })
}

test('an enqueue a trigger refuses quoting the recipient', async () => {
  const address = `enqueued-${crypto.randomUUID()}@example.com`
  await refuseQuotingRow(t.pool, { event: 'insert' })
  await refusedWithout(address, 'POST', '/v1/outbox', {
    message: { to: address, subject: 'Hi', text: 'Hello' },
  })
})

test('a cancel a trigger refuses quoting the recipient', async () => {
  const address = `cancelled-${crypto.randomUUID()}@example.com`
  const id = await enqueueSql(t.pool, {}, { to: address, subject: 'Hi', text: 'Hello' })
  await refuseQuotingRow(t.pool, { event: 'update' })
  await refusedWithout(address, 'POST', `/v1/outbox/${id}/cancel`)
})

test('a retry a trigger refuses quoting the recipient', async () => {
  const address = `retried-${crypto.randomUUID()}@example.com`
  const id = await enqueueSql(t.pool, {}, { to: address, subject: 'Hi', text: 'Hello' })
  await t.pool.query(
    `update mailer.email_outbox set status = 'failed', last_error_code = 'x' where id = $1`,
    [id],
  )
  await refuseQuotingRow(t.pool, { event: 'update' })
  await refusedWithout(address, 'POST', `/v1/outbox/${id}/retry`)
})
