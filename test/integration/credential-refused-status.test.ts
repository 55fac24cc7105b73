// A worker whose Graph credential Entra refuses says so in its registry entry: status exits 5 while rows wait, /v1/stats names it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { AUDIENCE, bearer, ISSUER, SECRET, token } from '../api/support/tokens.ts'
import { useTestDb } from '../support/db.ts'
import { defaultStatus } from '../support/default-status.ts'
import { pollUntil } from '../support/events.ts'
import {
  answerSecretExpired,
  EXPIRED_SECRET,
  secretExpired,
  useEntraOfExpiredSecret,
} from '../support/expired-secret.ts'
import { ENTRA_500 } from '../support/token-outage.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()
const entraOf = useEntraOfExpiredSecret()

async function started() {
  const entra = entraOf()
  return serve(
    loadConfig({
      DATABASE_URL: t.url,
      MAIL_TRANSPORT: 'graph',
      MAIL_FROM: 'outbox@example.com',
      GRAPH_TENANT_ID: entra.tenantId,
      GRAPH_CLIENT_ID: entra.clientId,
      GRAPH_CLIENT_SECRET: EXPIRED_SECRET,
      GRAPH_AUTHORITY_URL: entra.authorityUrl,
      GRAPH_API_URL: entra.apiUrl,
      // An idle worker beats once per lease length: none comes within a test, so what status
      // reads the worker wrote as it learned the refusal.
      LEASE_SECONDS: '300',
      GRAPH_REQUEST_TIMEOUT_SECONDS: '2',
      API_JWT_SECRET: SECRET,
      API_JWT_ISSUER: ISSUER,
      API_JWT_AUDIENCE: AUDIENCE,
      HOST: '127.0.0.1',
      PORT: '0',
    }),
    { role: 'all', log: silentLogger },
  )
}

/** Until the process counts the credential refused (its metric). */
async function refusedByMetric(port: number | null, timeoutMs?: number) {
  await pollUntil(async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    return metrics.includes('\noutbox_graph_credential_refused{credential="secret"} 1\n')
      ? true
      : undefined
  }, timeoutMs)
}

/** One row enqueued through the API. */
async function enqueueOne(port: number | null) {
  const enqueued = await fetch(`http://127.0.0.1:${port}/v1/outbox`, {
    method: 'POST',
    headers: { ...bearer(await token()), 'content-type': 'application/json' },
    body: JSON.stringify({ message: { to: 'a@example.com', subject: 's', text: 't' } }),
  })
  expect(enqueued.status).toBe(201)
}

/** Once the process counts the credential refused: until status reads it (far within a lease). */
async function refusalNoted(port: number | null) {
  await refusedByMetric(port)
  await pollUntil(async () =>
    ((await defaultStatus(t)).credentialRefused?.workers ?? 0) > 0 ? true : undefined,
  )
}

async function stats(port: number | null, tenant?: string) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/stats`, {
    headers: bearer(await token(tenant === undefined ? {} : { tenant })),
  })
  expect(res.status).toBe(200)
  const body = (await res.json()) as { databases: Record<string, unknown>[] }
  return body.databases[0]?.credentialRefused
}

test('Entra refusing the workers’ credential while rows wait: status needs attention (exit 5) naming the code and what to do; /v1/stats says so, null for a tenant', async () => {
  await t.reset()
  answerSecretExpired(entraOf(), 200)
  const running = await started()
  try {
    await enqueueOne(running.port)
    await refusalNoted(running.port)
    const status = await defaultStatus(t)
    expect({ health: status.health, reasons: status.reasons }).toEqual({
      health: 'attention',
      reasons: [
        expect.stringMatching(
          /^Entra refuses the Graph credential of 1 live worker\(s\) \(AADSTS7000222: the client secret has expired: create a new one\) since \d{4}-\d\d-\d\dT[\d:.]+Z, and 1 pending row\(s\) wait: nothing of theirs goes out once a token fetched before the refusal ends \(an hour at most\) until it is fixed \(a new GRAPH_CLIENT_SECRET or GRAPH_CERTIFICATE, or the app registration mended: the deploy guide's "Credential refused"\)$/,
        ),
      ],
    })
    expect(status.credentialRefused).toMatchObject({
      workers: 1,
      codes: ['AADSTS7000222'],
      since: expect.stringMatching(/^\d{4}-/),
    })
    expect(await stats(running.port)).toMatchObject({ workers: 1, codes: ['AADSTS7000222'] })
    expect(await stats(running.port, 'acme')).toBeNull()
    // Neither the secret nor Entra's words (which name the app) are kept in the registry.
    const entry = await t.pool.query('select to_jsonb(w)::text as w from mailer.workers w')
    expect(entry.rows[0].w).not.toContain(EXPIRED_SECRET)
    expect(entry.rows[0].w).not.toContain(entraOf().clientId)
  } finally {
    await running.stop('test')
  }
})

test('no row pending: the refusal is shown, yet status is ok (nothing waits on it)', async () => {
  await t.reset()
  answerSecretExpired(entraOf(), 200)
  const running = await started()
  try {
    await refusalNoted(running.port)
    const status = await defaultStatus(t)
    expect(status.health).toBe('ok')
    expect(status.credentialRefused).toMatchObject({ workers: 1, codes: ['AADSTS7000222'] })
  } finally {
    await running.stop('test')
  }
})

test('a refusal met after the worker started shows in status at once, not at its next beat a lease length later', async () => {
  await t.reset()
  const entra = entraOf()
  // The start's token request meets an Entra error (not a refusal), so the worker registers and
  // beats knowing none; the row's next try (5 s on, the least wait after no token) meets the refusal.
  entra.setFaults({
    token: [ENTRA_500, ...Array.from({ length: 200 }, () => secretExpired(entra))],
  })
  const running = await started()
  try {
    await enqueueOne(running.port)
    await refusedByMetric(running.port, 20_000)
    // Far within the lease: the entry is written when the worker learns the refusal.
    const status = await pollUntil(async () => {
      const s = await defaultStatus(t)
      return (s.credentialRefused?.workers ?? 0) > 0 ? s : undefined
    }, 10_000).catch(() => defaultStatus(t))
    expect({ health: status.health, credentialRefused: status.credentialRefused }).toEqual({
      health: 'attention',
      credentialRefused: {
        workers: 1,
        codes: ['AADSTS7000222'],
        since: expect.stringMatching(/^\d{4}-/),
      },
    })
  } finally {
    await running.stop('test')
  }
})
