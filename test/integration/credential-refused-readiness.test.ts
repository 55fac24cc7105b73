// A Graph credential Entra refuses, per role: --role all stays routed (enqueue keeps storing mail) and says so; --role worker is unready.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import type { Role } from '../../src/serve-options.ts'
import { AUDIENCE, bearer, ISSUER, SECRET, token } from '../api/support/tokens.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import {
  type FakeGraph,
  generateTestCertificate,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let fake: FakeGraph
/** A certificate Entra does not know: every token request answers AADSTS700027. */
let unregistered: TestCertificate

beforeAll(async () => {
  const [registered, other] = await Promise.all([
    generateTestCertificate(),
    generateTestCertificate(),
  ])
  unregistered = other
  fake = await startFakeGraph({ certificates: [registered.certPem] })
})
afterAll(async () => {
  await fake.stop()
})

const REFUSAL = 'graph token refused: AADSTS700027 (fix the app registration or credential)'

async function started(role: Role) {
  return serve(
    loadConfig({
      DATABASE_URL: t.url,
      MAIL_TRANSPORT: 'graph',
      MAIL_FROM: 'outbox@example.com',
      GRAPH_TENANT_ID: fake.tenantId,
      GRAPH_CLIENT_ID: fake.clientId,
      GRAPH_CERTIFICATE: unregistered.certPem,
      GRAPH_PRIVATE_KEY: unregistered.keyPem,
      GRAPH_AUTHORITY_URL: fake.authorityUrl,
      GRAPH_API_URL: fake.apiUrl,
      API_JWT_SECRET: SECRET,
      API_JWT_ISSUER: ISSUER,
      API_JWT_AUDIENCE: AUDIENCE,
      HOST: '127.0.0.1',
      PORT: '0',
    }),
    { role, log: silentLogger },
  )
}

interface Readiness {
  status: string
  databases: { ready: boolean; listener: string; problem: string | null; warning: string | null }[]
}

/**
 * /readyz once the start's first token request (warmUp) has been refused and the LISTEN session
 * listens (a listener still connecting is unready of its own, under load for a while).
 */
async function readinessAfterRefusal(port: number | null) {
  return pollUntil(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`)
    const body = (await res.json()) as Readiness
    const db = body.databases[0]
    return db?.listener === 'listening' && `${db.problem} ${db.warning}`.includes('AADSTS700027')
      ? { status: res.status, body }
      : undefined
  })
}

test('--role all: readiness stays 200 (the machine stays routed), the refusal in its warning and /metrics, and enqueue stores mail', async () => {
  await t.reset()
  const running = await started('all')
  try {
    const ready = await readinessAfterRefusal(running.port)
    expect(ready).toMatchObject({
      status: 200,
      body: { status: 'ready', databases: [{ ready: true, problem: null }] },
    })
    expect(ready.body.databases[0]?.warning).toStartWith(REFUSAL)
    const metrics = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text()
    expect(metrics).toContain(`\noutbox_graph_credential_refused{credential="certificate"} 1\n`)
    const res = await fetch(`http://127.0.0.1:${running.port}/v1/outbox`, {
      method: 'POST',
      headers: { ...bearer(await token()), 'content-type': 'application/json' },
      body: JSON.stringify({ message: { to: 'a@example.com', subject: 's', text: 't' } }),
    })
    expect(res.status).toBe(201)
    const { id } = (await res.json()) as { id: string }
    const row = await t.pool.query('select status from mailer.email_outbox where id = $1', [id])
    expect(row.rows[0].status).toBe('pending')
    expect(fake.accepted).toEqual([])
  } finally {
    await running.stop('test')
  }
})

test('--role worker: a worker that cannot send is not ready (its own check, outside routing), the refusal its problem', async () => {
  await t.reset()
  const running = await started('worker')
  try {
    const unready = await readinessAfterRefusal(running.port)
    expect(unready).toMatchObject({
      status: 503,
      body: { status: 'unavailable', databases: [{ ready: false, problem: REFUSAL }] },
    })
    const metrics = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text()
    expect(metrics).toContain(`\noutbox_graph_credential_refused{credential="certificate"} 1\n`)
  } finally {
    await running.stop('test')
  }
})
