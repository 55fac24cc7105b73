// outbox_graph_certificate_expiry_timestamp_seconds: an alert can warn of the Graph certificate's end a month ahead, as check-config does by hand.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import { createMetrics } from '../../src/api/metrics.ts'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { createTransport, type Transport } from '../../src/transport-wiring.ts'
import { useTestDb } from '../support/db.ts'
import { generateTestCertificate } from '../support/test-certificate.ts'
import { fakeHealth } from './support/fake-health.ts'
import { appOnDefault, send } from './support/harness.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const GAUGE = 'outbox_graph_certificate_expiry_timestamp_seconds'

/** /metrics of an app whose metrics are wired with what `transport` says, as serve wires them. */
async function scrape(certificate: Transport['certificate']): Promise<string> {
  const health = fakeHealth(['default'])
  const metrics = createMetrics({
    databases: [{ name: 'default', db: t.db, statements: t.statements }],
    health,
    ...(certificate ? { certificate } : {}),
  })
  const { app } = appOnDefault(t, { health, metrics })
  return (await send(app, 'GET', '/metrics')).body as string
}

test('a Graph worker with a certificate exports its end as a Unix time; with a client secret, none', async () => {
  // The Monday an expired certificate stops every mail: nothing in /metrics said it was coming.
  const notAfter = new Date(Date.now() + 20 * 86_400_000)
  const cert = await generateTestCertificate({ notAfter })
  const graph = {
    MAIL_TRANSPORT: 'graph',
    DATABASE_URL: 'postgres://u:p@db/app',
    MAIL_FROM: 'sender@example.com',
    GRAPH_TENANT_ID: crypto.randomUUID(),
    GRAPH_CLIENT_ID: crypto.randomUUID(),
  }
  const withCert = createTransport(
    loadConfig({ ...graph, GRAPH_CERTIFICATE: cert.certPem, GRAPH_PRIVATE_KEY: cert.keyPem }),
    silentLogger,
  )
  // The certificate's notAfter and thumbprint, as the certificate itself and the portal say them.
  const x509 = new X509Certificate(cert.certPem)
  const validTo = Date.parse(x509.validTo)
  expect(Math.abs(validTo - notAfter.getTime())).toBeLessThan(86_400_000)
  const thumbprint = x509.fingerprint.replaceAll(':', '')
  expect(withCert.certificate).toEqual({ thumbprint, notAfter: validTo })
  const text = await scrape(withCert.certificate)
  expect(text).toContain(`\n${GAUGE}{thumbprint="${thumbprint}"} ${validTo / 1000}\n`)

  const withSecret = createTransport(
    loadConfig({ ...graph, GRAPH_CLIENT_SECRET: 'a-client-secret-value' }),
    silentLogger,
  )
  expect(withSecret.certificate).toBeUndefined()
  expect(await scrape(withSecret.certificate)).not.toContain(`\n${GAUGE}{`)
})
