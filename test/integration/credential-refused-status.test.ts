// A worker whose Graph credential Entra refuses says so in its registry entry: status exits 5 while rows wait, /v1/stats names it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { enqueueSql } from '../api/support/harness.ts'
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
import { oneDatabaseTable } from '../support/one-database-table.ts'
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
        cachedTokenWorkers: 0,
        cachedTokenServesUntil: null,
      },
    })
  } finally {
    await running.stop('test')
  }
})

/**
 * A live registry entry refused by Entra (0198), its cached token serving until `servesInSeconds`
 * from now by the database's clock (0202; null: none serves), as a worker's refusal note writes it.
 */
async function refusedEntry(id: string, servesInSeconds: number | null) {
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds,
                                 credential_refused_code, credential_refused_since, credential_serves_until)
     values ($1, 'h', 1, 'test', '', 60, 'AADSTS7000222', now() - interval '1 minute',
             now() + make_interval(secs => $2::float8))`,
    [id, servesInSeconds],
  )
}

/** Until when each entry's cached token serves, as the database wrote it (ISO). */
async function servesUntil(id: string): Promise<string> {
  const r = await t.pool.query(
    'select credential_serves_until as at from mailer.workers where id = $1',
    [id],
  )
  return (r.rows[0].at as Date).toISOString()
}

test('a worker refused while its cached token still serves: status says until when it still sends (its registry entry, database time), in the reason, the JSON and the line with no row pending', async () => {
  // review57: status exited 5 saying "Entra refuses the Graph credential … nothing of theirs goes
  // out once a token fetched before the refusal ends (an hour at most)", with no word that mail
  // still went, nor until when, though the entry notes it (0202's credential_serves_until).
  await t.reset()
  await refusedEntry('a:1:abcdef', 2400)
  const until = await servesUntil('a:1:abcdef')
  await enqueueSql(t.pool)
  const status = await defaultStatus(t)
  expect({
    health: status.health,
    credentialRefused: status.credentialRefused,
    reasons: status.reasons,
  }).toEqual({
    health: 'attention',
    credentialRefused: {
      workers: 1,
      codes: ['AADSTS7000222'],
      since: expect.stringMatching(/^\d{4}-/),
      cachedTokenWorkers: 1,
      cachedTokenServesUntil: until,
    },
    reasons: [
      expect.stringContaining(
        `(AADSTS7000222: the client secret has expired: create a new one) since ${status.credentialRefused?.since}, still sending on its cached token until ${until} (database time), and 1 pending row(s) wait: `,
      ),
    ],
  })
  // No row pending: the table's line says it too.
  await t.pool.query('delete from mailer.email_outbox')
  const idle = await defaultStatus(t)
  expect(idle.health).toBe('ok')
  const text = oneDatabaseTable(idle)
  expect(text).toContain(
    `default: Entra refuses the Graph credential of 1 live worker(s) (AADSTS7000222: the client secret has expired: create a new one) since ${idle.credentialRefused?.since}, still sending on its cached token until ${until} (database time): no row waits on it yet`,
  )
})

test('of three workers refused, one whose cached token serves, one with none and one past its end: status counts the one still sending and says until when', async () => {
  await t.reset()
  await refusedEntry('a:1:abcdef', 1200)
  await refusedEntry('b:1:abcdef', null)
  await refusedEntry('c:1:abcdef', -5)
  const until = await servesUntil('a:1:abcdef')
  await enqueueSql(t.pool)
  const status = await defaultStatus(t)
  expect(status.credentialRefused).toMatchObject({
    workers: 3,
    cachedTokenWorkers: 1,
    cachedTokenServesUntil: until,
  })
  expect(status.reasons).toEqual([
    expect.stringContaining(
      `, 1 of them still sending on its cached token until ${until} (database time), and 1 pending row(s) wait: `,
    ),
  ])
  // None serving: as before, no such words.
  await t.pool.query(`update mailer.workers set credential_serves_until = null`)
  const none = await defaultStatus(t)
  expect(none.credentialRefused).toMatchObject({
    workers: 3,
    cachedTokenWorkers: 0,
    cachedTokenServesUntil: null,
  })
  expect(none.reasons).toEqual([expect.not.stringContaining('cached token')])
})
