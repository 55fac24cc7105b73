// A test file's app over a database of its own: created once, emptied before each test, with a token holding every scope.
import { afterAll, beforeAll, beforeEach } from 'bun:test'
import { createTestDb, type TestDb } from '../../support/db.ts'
import { type App, appOnDefault } from './harness.ts'
import { token } from './tokens.ts'

export interface OwnDatabaseApp {
  readonly t: TestDb
  readonly app: App
  readonly tk: string
}

/** Registers the file's hooks; the fields are set once its beforeAll ran. */
export function appOnOwnDatabase(): OwnDatabaseApp {
  const s = {} as { t: TestDb; app: App; tk: string }
  beforeAll(async () => {
    s.t = await createTestDb()
    s.app = appOnDefault(s.t).app
    s.tk = await token()
  })
  afterAll(async () => {
    await s.t.drop()
  })
  beforeEach(async () => {
    await s.t.reset()
  })
  return s
}
