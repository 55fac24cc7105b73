// A Graph credential Entra refuses, per role: --role all stays routed (enqueue keeps storing mail) and says so; --role worker is unready.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import type { Role } from '../../src/serve-options.ts'
import { AUDIENCE, bearer, ISSUER, SECRET, token } from '../api/support/tokens.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { answerSecretExpired, EXPIRED_SECRET } from '../support/expired-secret.ts'
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

const REFUSAL =
  'graph token refused: AADSTS700027: the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration (fix the app registration or credential)'

/** serve's environment against `entra` with `credential` (a certificate pair, or a secret). */
function envFor(entra: FakeGraph, credential: Record<string, string>) {
  return {
    DATABASE_URL: t.url,
    MAIL_TRANSPORT: 'graph',
    MAIL_FROM: 'outbox@example.com',
    GRAPH_TENANT_ID: entra.tenantId,
    GRAPH_CLIENT_ID: entra.clientId,
    ...credential,
    GRAPH_AUTHORITY_URL: entra.authorityUrl,
    GRAPH_API_URL: entra.apiUrl,
    API_JWT_SECRET: SECRET,
    API_JWT_ISSUER: ISSUER,
    API_JWT_AUDIENCE: AUDIENCE,
    HOST: '127.0.0.1',
    PORT: '0',
  }
}

async function started(role: Role) {
  return serve(
    loadConfig(
      envFor(fake, {
        GRAPH_CERTIFICATE: unregistered.certPem,
        GRAPH_PRIVATE_KEY: unregistered.keyPem,
      }),
    ),
    { role, log: silentLogger },
  )
}

/** The refusal in /metrics, and an enqueue through the API stored all the same: its row's id. */
async function refusedYetStoring(port: number | null): Promise<string> {
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  expect(metrics).toContain(`\noutbox_graph_credential_refused{credential="certificate"} 1\n`)
  const res = await fetch(`http://127.0.0.1:${port}/v1/outbox`, {
    method: 'POST',
    headers: { ...bearer(await token()), 'content-type': 'application/json' },
    body: JSON.stringify({ message: { to: 'a@example.com', subject: 's', text: 't' } }),
  })
  expect(res.status).toBe(201)
  return ((await res.json()) as { id: string }).id
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
    const id = await refusedYetStoring(running.port)
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

test('an expired client secret (AADSTS7000222): /readyz and the log line say what the code means and what to do, as check-config does', async () => {
  await t.reset()
  const entra = await startFakeGraph({ clientSecret: EXPIRED_SECRET })
  // Every time it is asked.
  answerSecretExpired(entra, 50)
  const lines: string[] = []
  const running = await serve(loadConfig(envFor(entra, { GRAPH_CLIENT_SECRET: EXPIRED_SECRET })), {
    role: 'worker',
    log: createLogger('info', (l) => lines.push(l)),
  })
  try {
    const unready = await pollUntil(async () => {
      const res = await fetch(`http://127.0.0.1:${running.port}/readyz`)
      const body = (await res.json()) as Readiness
      return body.databases[0]?.problem?.includes('AADSTS7000222') ? body : undefined
    })
    expect(unready.databases[0]?.problem).toBe(
      'graph token refused: AADSTS7000222: the client secret has expired: create a new one (fix the app registration or credential)',
    )
    const failed = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'graph token request failed')
    expect(failed).toMatchObject({
      code: 'AADSTS7000222',
      hint: 'the client secret has expired: create a new one',
    })
  } finally {
    await running.stop('test')
    await entra.stop()
  }
})

test("a certificate past its end date: --role all starts and stays routed (the API stores mail), the expiry its warning and its rows' code; Entra is not asked", async () => {
  await t.reset()
  // Registered on the app, and expired yesterday: a machine restarted (a deploy, a secret set)
  // after the night its certificate ended.
  const expired = await generateTestCertificate({
    notBefore: new Date(Date.now() - 400 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  })
  const entra = await startFakeGraph({ certificates: [expired.certPem] })
  const running = await serve(
    loadConfig(
      envFor(entra, { GRAPH_CERTIFICATE: expired.certPem, GRAPH_PRIVATE_KEY: expired.keyPem }),
    ),
    { role: 'all', log: silentLogger },
  ).catch((e: unknown) => (e instanceof Error ? e.message : String(e)))
  try {
    // A start refused (exit 2 in the binary) ends the test with its reason.
    if (typeof running === 'string') expect(running).toBe('a started service')
    if (typeof running === 'string') return
    const ready = await pollUntil(async () => {
      const res = await fetch(`http://127.0.0.1:${running.port}/readyz`)
      const body = (await res.json()) as Readiness
      const db = body.databases[0]
      return db?.listener === 'listening' && db.warning?.includes('certificate_expired')
        ? { status: res.status, body }
        : undefined
    })
    expect(ready).toMatchObject({ status: 200, body: { databases: [{ ready: true }] } })
    expect(ready.body.databases[0]?.warning).toStartWith(
      'graph token refused: certificate_expired: GRAPH_CERTIFICATE has passed its end date',
    )
    const id = await refusedYetStoring(running.port)
    const row = await pollUntil(async () => {
      const r = await t.pool.query(
        'select status, last_error_code from mailer.email_outbox where id = $1',
        [id],
      )
      return r.rows[0]?.last_error_code ? r.rows[0] : undefined
    })
    expect(row).toEqual({ status: 'pending', last_error_code: 'certificate_expired' })
    expect(entra.tokenRequests).toEqual([])
  } finally {
    if (typeof running !== 'string') await running.stop('test')
    await entra.stop()
  }
})
