// A SIGTERM while every database answer takes seconds: the sends Graph accepted are recorded as sent before the exit, and the exit says whether any was not.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { compiledBinary } from '../support/binary.ts'
import { startDelayingProxy } from '../support/delaying-proxy.ts'
import { pollUntil } from '../support/events.ts'
import {
  generateTestCertificate,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'
import { lastLine, spawnGraphBinaryWorker } from '../support/graph-binary-worker.ts'
import { listeningPort } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Builds and drives the real binary; the stop it watches waits on seconds-late answers.
setDefaultTimeout(120_000)

const FROM = 'outbox@contoso.example'
let database: TemplateDb
let bin: string
let cert: TestCertificate
beforeAll(async () => {
  ;[bin, cert] = await Promise.all([compiledBinary(), generateTestCertificate()])
  database = await cloneTemplateDb('outbox_stop_slow')
})
afterAll(async () => {
  await database?.drop()
})

test('SIGTERM with sends in flight while every answer is 2 s late: each accepted send is recorded, and the exit code and the last line say whether one went unrecorded', async () => {
  const proxy = await startDelayingProxy(database.url)
  const fake = await startFakeGraph({
    certificates: [cert.certPem],
    mailboxes: [FROM],
    concurrencyLimit: 100,
  })
  // Long enough that every send is in flight when the signal comes, short beside the grace.
  fake.setFaults({ latencyMs: 1_500 })
  const graceSeconds = 4
  const { p, stdout } = spawnGraphBinaryWorker(bin, {
    databaseUrl: proxy.url,
    fake,
    cert,
    mailFrom: FROM,
    env: {
      GRAPH_MAX_CONCURRENCY: '8',
      WORKER_CONCURRENCY: '8',
      SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
    },
  })
  let code: number
  try {
    await listeningPort(stdout, p.exited)
    await adminQuery(
      database.url,
      `select mailer.enqueue_email(jsonb_build_object('to', 'someone@contoso.example', 'subject', 'Hello', 'text', 'Hi ' || i))
         from generate_series(1, 20) i`,
    )
    await pollUntil(async () => (fake.inFlight() >= 8 ? true : undefined), 30_000)
    // From now on every answer (and notification) reaches the worker 2 s late.
    proxy.delay({ answerMs: 2_000, requestMs: 0 })
    p.kill('SIGTERM')
    code = await p.exited
  } finally {
    p.kill('SIGKILL')
    proxy.close()
    await fake.stop()
  }
  await stdout.ended
  const { line: last, unrecorded: said } = lastLine(stdout)
  const accepted = new Set(fake.accepted.map((a) => a.outboxId ?? '?'))
  const { rows } = await adminQuery(
    database.url,
    `select id::text from mailer.email_outbox where status = 'sent'`,
  )
  const sent = new Set(rows.map((r: { id: string }) => r.id))
  expect(accepted.size).toBe(8)
  const unrecorded = [...accepted].filter((id) => !sent.has(id)).sort()
  said.sort()
  // The exit and its last line say whether any of them went unrecorded (to be sent again), and which.
  expect({ code, last: { level: last.level, unrecorded: said } }).toEqual(
    unrecorded.length === 0
      ? { code: 0, last: { level: expect.not.stringMatching(/error/), unrecorded: [] } }
      : { code: 1, last: { level: 'error', unrecorded } },
  )
  // The recording has until a second before the bound (the grace + 8 s), not the grace + 5 s.
  expect(unrecorded).toEqual([])
})
