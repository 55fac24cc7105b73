// Rotating API_JWT_SECRET: API_JWT_SECRET_PREVIOUS keeps the former secret's tokens working until the callers have moved.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { type App, appOnDefault, send } from './support/harness.ts'
import { AUDIENCE, ISSUER, token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const OLD = `old-${crypto.randomUUID()}${crypto.randomUUID()}`
const NEW = `new-${crypto.randomUUID()}${crypto.randomUUID()}`
const lines: Record<string, unknown>[] = []
let app: App

beforeAll(() => {
  const auth = {
    jwtSecret: NEW,
    jwtSecretPrevious: OLD,
    jwksUrl: null,
    issuer: ISSUER,
    audience: AUDIENCE,
  }
  app = appOnDefault(t, { auth, log: createLogger('info', (l) => lines.push(JSON.parse(l))) }).app
})

const stats = async (secret: string) =>
  (await send(app, 'GET', '/v1/stats', { token: await token({ secret }) })).status

describe('API_JWT_SECRET_PREVIOUS', () => {
  test("tokens of the new secret and of the previous one are accepted, another secret's are not", async () => {
    expect(await stats(NEW)).toBe(200)
    expect(await stats(OLD)).toBe(200)
    expect(await stats(`other-${crypto.randomUUID()}${crypto.randomUUID()}`)).toBe(401)
  })

  test('a token of the previous secret is logged, so the operator sees who has not moved', async () => {
    lines.length = 0
    const r = await send(app, 'GET', '/v1/stats', {
      token: await token({ secret: OLD, sub: 'billing' }),
    })
    expect(r.status).toBe(200)
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'API token signed with API_JWT_SECRET_PREVIOUS',
        requestId: r.headers.get('x-request-id'),
      }),
    )
  })

  test('is read from the environment, only beside API_JWT_SECRET, and never equal to it', () => {
    const base = { DATABASE_URL: 'postgres://u:p@db/app', MAIL_TRANSPORT: 'file' }
    const both = loadConfig({ ...base, API_JWT_SECRET: NEW, API_JWT_SECRET_PREVIOUS: OLD })
    expect(both.api.jwtSecretPrevious).toBe(OLD)
    expect(() => loadConfig({ ...base, API_JWT_SECRET_PREVIOUS: OLD })).toThrow(
      'API_JWT_SECRET_PREVIOUS needs API_JWT_SECRET',
    )
    expect(() =>
      loadConfig({ ...base, API_JWT_SECRET: NEW, API_JWT_SECRET_PREVIOUS: NEW }),
    ).toThrow('API_JWT_SECRET_PREVIOUS is API_JWT_SECRET')
    expect(() =>
      loadConfig({ ...base, API_JWT_SECRET: NEW, API_JWT_SECRET_PREVIOUS: 'short' }),
    ).toThrow('API_JWT_SECRET_PREVIOUS: must be at least 32 characters')
  })
})

test("an expired token of the previous secret is refused as expired, not as another secret's", async () => {
  const r = await send(app, 'GET', '/v1/stats', {
    token: await token({ secret: OLD, expiresIn: -3600 }),
  })
  expect(r.status).toBe(401)
  expect((r.body as { detail: string }).detail).toContain('expired')
})
