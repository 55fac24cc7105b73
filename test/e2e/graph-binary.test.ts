// The compiled binary against the strict Graph fake: one token, bounded concurrency, codes kept.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { compiledBinary } from '../support/binary.ts'
import { pollUntil, pollUntilCount } from '../support/events.ts'
import {
  type FakeGraph,
  generateTestCertificate,
  graphEnvFor,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPort } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

const FROM = 'outbox@contoso.example'
let database: TemplateDb
const jwtSecret = crypto.randomUUID() + crypto.randomUUID()
let bin: string
let url: string
let cert: TestCertificate

// Builds and drives the real binary: slower than a unit test, still bounded.
setDefaultTimeout(90_000)

beforeAll(async () => {
  ;[bin, cert] = await Promise.all([compiledBinary(), generateTestCertificate()])
  database = await cloneTemplateDb('outbox_graph')
  url = database.url
})
afterAll(async () => {
  await database?.drop()
})

// PORT=0: the binary binds a port of the system's choosing and says which (at info); its log lines
// are read as they come, and a test reads them whole once the binary has exited (`logs`).
async function serve(fake: FakeGraph, key: TestCertificate, extra: Record<string, string> = {}) {
  const proc = Bun.spawn([bin, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: url,
      ...graphEnvFor(fake),
      MAIL_FROM: FROM,
      GRAPH_CERTIFICATE: key.certPem,
      GRAPH_PRIVATE_KEY: key.keyPem,
      GRAPH_MAX_CONCURRENCY: '4',
      MAILBOX_RATE_PER_MINUTE: '0',
      WORKER_CONCURRENCY: '20',
      API_JWT_SECRET: jwtSecret,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      ...extra,
    },
    // Log lines go to stdout.
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = growingOutput(proc.stdout)
  const port = await listeningPort(stdout, proc.exited)
  await pollUntil(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null)
    return res?.ok ? true : undefined
  })
  const logs = async () => {
    await stdout.ended
    return stdout.text()
  }
  return { proc, port, logs }
}

const statusOf = async (id: string) =>
  (
    await adminQuery(url, 'select status, last_error_code from mailer.email_outbox where id = $1', [
      id,
    ])
  ).rows[0]
const enqueueOne = async (to = 'someone@contoso.example') =>
  (
    await adminQuery(url, `select mailer.enqueue_email($1::jsonb) as id`, [
      JSON.stringify({ to, subject: 'Hello', text: 'Hi' }),
    ])
  ).rows[0].id as string

test('drains a burst through Graph with one token request and at most 4 requests in flight', async () => {
  const fake = await startFakeGraph({ certificates: [cert.certPem], mailboxes: [FROM] })
  const { proc } = await serve(fake, cert)
  try {
    // The first token is asked for at start, before any mail is due.
    await pollUntil(async () => (fake.tokenRequests.length === 1 ? true : undefined), 20_000)
    expect(fake.accepted.length).toBe(0)
    fake.setFaults({ sendMail: ['invalid_recipients'] })
    const bad = await enqueueOne()
    await pollUntil(async () => ((await statusOf(bad)).status === 'failed' ? true : undefined))
    expect(await statusOf(bad)).toEqual({
      status: 'failed',
      last_error_code: 'ErrorInvalidRecipients',
    })
    const attempt = await adminQuery(
      url,
      'select http_status, request_id from mailer.email_attempts where outbox_id = $1',
      [bad],
    )
    expect(attempt.rows[0].http_status).toBe(400)
    expect(attempt.rows[0].request_id).toMatch(/^[0-9a-f-]{36}$/)

    fake.setFaults({ latencyMs: 2 })
    await adminQuery(
      url,
      `select mailer.enqueue_email(jsonb_build_object('to', 'r' || g || '@contoso.example', 'subject', 's' || g, 'text', 'b'))
         from generate_series(1, 1500) g`,
    )
    // Bounded by progress, under the poll interval (30 s) so a lost wake-up's stall still fails it:
    // a total of 60 s failed at load ~20 (the drain takes ~9 s at load 5) without saying how far it got.
    await pollUntilCount(
      async () =>
        (
          await adminQuery(
            url,
            `select count(*)::int as n from mailer.email_outbox where status = 'sent'`,
          )
        ).rows[0].n,
      1500,
      20_000,
    )
    const ids = fake.accepted.map((m) => m.outboxId)
    expect(ids.length).toBe(1500)
    expect(new Set(ids).size).toBe(1500)
    expect(fake.accepted.every((m) => m.propertyValue === m.outboxId)).toBe(true)
    expect(fake.tokenRequests.length).toBe(1)
    expect(fake.maxConcurrent).toBeLessThanOrEqual(4)
    expect(fake.maxConcurrent).toBeGreaterThan(1)
  } finally {
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
    await fake.stop()
  }
  // The drain's own bound is its progress (above); this one only ends a run left waiting.
}, 300_000)

test('a certificate Entra does not know: readiness stays 200 (serve is --role all: its API stays routed) and says why, and rows wait uncounted instead of failing', async () => {
  const other = await generateTestCertificate()
  const fake = await startFakeGraph({ certificates: [cert.certPem], mailboxes: [FROM] })
  const { proc, port } = await serve(fake, other)
  try {
    const id = await enqueueOne()
    const readiness = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`)
      return { status: res.status, body: JSON.stringify(await res.json()) }
    }
    // Judged once the start has settled: until the LISTEN session connects, readiness is 503 for
    // that alone ("listener is connecting"), and on a loaded machine the refusal is known before.
    const refused = await pollUntil(async () => {
      const r = await readiness()
      return r.body.includes('AADSTS700027') && !r.body.includes('"listener":"connecting"')
        ? r
        : undefined
    })
    expect(refused.status).toBe(200)
    expect(refused.body).toContain('"warning":"graph token refused: AADSTS700027')
    // Claimed before the refusal was known, the row came back with its attempt refunded; after it,
    // it was not claimed at all. Either way it waits for a credential that works, not failed.
    const row = await pollUntil(async () => {
      const r = await adminQuery(
        url,
        'select status, attempts, last_error_code from mailer.email_outbox where id = $1',
        [id],
      )
      return r.rows[0].status === 'pending' && r.rows[0].last_error_code !== null
        ? r.rows[0]
        : undefined
    }, 30_000)
    expect(row.attempts).toBe(0)
    // Met by a claim or not, the row names what it waits for (the worker marks the due rows).
    expect(row.last_error_code).toBe('AADSTS700027')
    expect(fake.accepted).toEqual([])
  } finally {
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
    await fake.stop()
  }
})

test('a MAIL_FROM Graph does not know: rows wait uncounted, readiness stays 200 and warns, the gauge says it, the log once, never the address', async () => {
  const fake = await startFakeGraph({
    certificates: [cert.certPem],
    mailboxes: ['someone-else@contoso.example'],
  })
  // An earlier test's rows are not this one's.
  await adminQuery(url, `delete from mailer.email_outbox where status = 'pending'`)
  const { proc, port, logs: logsWhole } = await serve(fake, cert)
  try {
    const id = await enqueueOne()
    const row = await pollUntil(async () => {
      const r = await adminQuery(
        url,
        'select status, attempts, last_error_code from mailer.email_outbox where id = $1',
        [id],
      )
      return r.rows[0].last_error_code ? r.rows[0] : undefined
    }, 20_000)
    expect(row).toEqual({ status: 'pending', attempts: 0, last_error_code: 'ErrorInvalidUser' })
    const res = await fetch(`http://127.0.0.1:${port}/readyz`)
    const body = JSON.stringify(await res.json())
    expect(res.status).toBe(200)
    expect(body).toContain(
      'the sender mailbox MAIL_FROM is refused by Graph (HTTP 404 ErrorInvalidUser)',
    )
    expect(body).not.toContain(FROM)
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    expect(metrics).toContain('outbox_sender_mailbox_refused{mailbox="MAIL_FROM"} 1')
  } finally {
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
    await fake.stop()
  }
  const logs = await logsWhole()
  const errors = logs.split('\n').filter((l) => l.includes('"level":"error"'))
  expect(errors).toHaveLength(1)
  expect(errors[0]).toContain('sender mailbox refused by Graph: its rows wait')
  expect(logs).not.toContain(FROM)
})

test('a GRAPH_MAX_CONCURRENCY above Outlook’s 4 requests per app is logged as a warning at start, once', async () => {
  const fake = await startFakeGraph({ certificates: [cert.certPem], mailboxes: [FROM] })
  const { proc, logs } = await serve(fake, cert, { GRAPH_MAX_CONCURRENCY: '8' })
  try {
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
    const warned = (await logs())
      .split('\n')
      .filter((l) => l.includes('GRAPH_MAX_CONCURRENCY'))
      .map((l) => JSON.parse(l))
    expect(warned).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: "GRAPH_MAX_CONCURRENCY is 8, above Outlook's 4 concurrent requests per app: Graph answers a request past them 429 (MailboxConcurrency), and its mailbox waits as after any throttle",
        graphMaxConcurrency: 8,
      }),
    ])
  } finally {
    proc.kill('SIGKILL')
    await fake.stop()
  }
})
