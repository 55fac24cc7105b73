// A URL that asks for TLS (the deploy guide's sslmode=verify-full) of a server that takes none, as a Postgres on Fly's private network: check-config and migrate say what to change, not only the driver's words.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { checkConfig } from '../../src/check-config.ts'
import { loadConfig } from '../../src/config.ts'
import { migrateEvery } from '../../src/db/migrate-every.ts'
import { unreachableCause } from '../../src/db/unreachable-cause.ts'
import { EXIT } from '../../src/errors.ts'
import { silentLogger } from '../../src/log.ts'
import { createTestDb, type TestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const advice =
  'the server takes no TLS, which the URL asks for (sslmode): enable TLS on the server, or, on a private network only (a Fly Postgres reached at its .flycast or .internal address), set sslmode=disable in the URL (deploy guide, step 4)'

let db: TestDb
let url: string
beforeAll(async () => {
  db = await createTestDb()
  // The test cluster, like the embedded one, takes no TLS.
  url = `${db.url}?sslmode=verify-full`
})
afterAll(async () => {
  await db?.drop()
})

describe('sslmode=verify-full against a server without TLS', () => {
  test('check-config --connect names the cause and what to change', async () => {
    const r = await checkConfig(
      {
        MAIL_TRANSPORT: 'discard',
        API_JWT_SECRET: randomBytes(32).toString('base64url'),
        DATABASE_URL: url,
        LISTEN_MODE: 'poll',
      },
      { connect: true, role: 'api', timeoutMs: 5000 },
    )
    expect(r.problems).toEqual([
      `database "default" (DATABASE_URL): cannot connect: The server does not support SSL connections: ${advice}`,
    ])
  })

  test('migrate names it too', async () => {
    const err: string[] = []
    const exit = await migrateEvery(
      loadConfig({ DATABASE_URL: url }, { role: 'api' }),
      silentLogger,
      {
        out: () => {},
        err: (line) => err.push(line),
      },
    )
    expect(exit).toBe(EXIT.failure)
    expect(err).toEqual([
      `default (DATABASE_URL): The server does not support SSL connections: ${advice}`,
    ])
  })

  test('readiness says the same after its code', () => {
    expect(unreachableCause(new Error('The server does not support SSL connections'))).toBe(
      `tls_refused: ${advice}`,
    )
  })
})

describe('sslmode=allow against a server without TLS', () => {
  test("libpq's try without TLS first is refused before any connection; the disable it names connects", async () => {
    // node-postgres reads allow as verify-full: against this server every connection was refused.
    const check = (sslmode: string) =>
      checkConfig(
        {
          MAIL_TRANSPORT: 'discard',
          API_JWT_SECRET: randomBytes(32).toString('base64url'),
          DATABASE_URL: `${db.url}?sslmode=${sslmode}`,
          LISTEN_MODE: 'poll',
        },
        { connect: true, role: 'api', timeoutMs: 5000 },
      )
    const allow = await check('allow')
    expect([allow.problems, allow.checks]).toEqual([
      [
        'DATABASE_URL: sslmode=allow is not one the driver can do (it would ask for TLS and check the certificate, where libpq tries without TLS first): use sslmode=disable for a server that takes no TLS, on a private network only, or sslmode=verify-full (deploy guide, step 4)',
      ],
      [],
    ])
    const disable = await check('disable')
    expect(disable.problems).toEqual([])
    expect(disable.checks).toContainEqual(
      expect.stringMatching(/^database "default" \(DATABASE_URL\): reachable, PostgreSQL /),
    )
  })
})
