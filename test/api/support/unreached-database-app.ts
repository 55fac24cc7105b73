// A test file's app over a database it never reaches (nothing listens at its port): for a file whose every request is answered before any statement runs.
import { afterAll, beforeAll } from 'bun:test'
import { type DbHandle, openDb } from '../../../src/db/open.ts'
import { silentLogger } from '../../../src/log.ts'
import { closedPort } from '../../support/closed-port.ts'
import { type App, appOnDefault } from './harness.ts'
import { token } from './tokens.ts'

export interface UnreachedDatabaseApp {
  readonly app: App
  readonly tk: string
}

/**
 * Registers the file's hooks; the fields are set once its beforeAll ran. A request that ran a
 * statement would answer 503 (every /v1 route does when its database is unreachable:
 * contract.test.ts), so the refusal a test expects shows that nothing ran, nothing was stored. Such
 * a file opens no Postgres: its imports do not reach test/preload.ts, and .ci/run runs it on one
 * version (.ci/test-shards versioned), as what it checks cannot depend on the version.
 */
export function appOnUnreachedDatabase(): UnreachedDatabaseApp {
  const s = {} as { handle: DbHandle; app: App; tk: string }
  beforeAll(async () => {
    s.handle = openDb({
      name: 'default',
      url: `postgres://nobody@127.0.0.1:${await closedPort()}/nothing`,
      log: silentLogger,
    })
    s.app = appOnDefault(s.handle).app
    s.tk = await token()
  })
  afterAll(() => s.handle.close())
  return s
}
