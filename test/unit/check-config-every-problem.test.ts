// check-config names the Graph credential's problems beside the other variables' in one run, not once those are fixed.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { checkConfig } from '../../src/check-config.ts'
import { generateTestCertificate, type TestCertificate } from '../support/test-certificate.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let cert: TestCertificate
beforeAll(async () => {
  cert = await generateTestCertificate()
})

const env = (extra: Record<string, string>) => ({
  DATABASE_URL: 'postgres://app@db.example/app',
  API_JWT_SECRET: randomBytes(32).toString('base64url'),
  MAIL_FROM: 'notifications@example.com',
  GRAPH_CLIENT_ID: randomUUID(),
  GRAPH_TENANT_ID: randomUUID(),
  GRAPH_PRIVATE_KEY: cert.keyPem,
  ...extra,
})

// A thumbprint pasted where the certificate goes (step 2's portal shows it), beside a tenant the
// start refuses: one run of check-config names both.
const thumbprint = randomBytes(20).toString('hex').toUpperCase()

test('a thumbprint in GRAPH_CERTIFICATE is named beside a GRAPH_TENANT_ID refused, not after it is fixed', async () => {
  const alone = await checkConfig(env({ GRAPH_CERTIFICATE: thumbprint }), { connect: false })
  const credential = alone.problems.filter((p) => p.startsWith('GRAPH_CERTIFICATE:'))
  expect(credential).toHaveLength(1)
  const beside = await checkConfig(
    env({ GRAPH_CERTIFICATE: thumbprint, GRAPH_TENANT_ID: 'common' }),
    { connect: false },
  )
  expect(beside.problems.map((p) => p.split(':')[0])).toEqual([
    'GRAPH_TENANT_ID',
    'GRAPH_CERTIFICATE',
  ])
  expect(beside.problems[1]).toBe(credential[0])
})

test('a credential the configuration itself refuses (both a secret and a certificate) is named once, and none is read for an API-only check', async () => {
  const both = await checkConfig(
    env({
      GRAPH_CERTIFICATE: thumbprint,
      GRAPH_CLIENT_SECRET: randomUUID(),
      GRAPH_TENANT_ID: 'common',
    }),
    { connect: false },
  )
  expect(both.problems.filter((p) => p.startsWith('GRAPH_CERTIFICATE:'))).toEqual([])
  const api = await checkConfig(env({ GRAPH_CERTIFICATE: thumbprint, DATABASE_URL: 'mysql://x' }), {
    connect: false,
    role: 'api',
  })
  expect(api.problems.map((p) => p.split(':')[0])).toEqual(['DATABASE_URL'])
})
