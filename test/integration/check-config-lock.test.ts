// check-config --connect while a hand session's exclusive lock holds mailer.schema_migrations: bounded, the lock and its holder named, not a timeout alone.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { checkConfig } from '../../src/check-config.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { holdHandLock } from '../support/hand-lock.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t.drop()
})

test('the schema check waits for no lock: the problem names the lock on mailer.schema_migrations and its holder', async () => {
  const lock = await holdHandLock(t.url, 'mailer.schema_migrations')
  try {
    const r = await checkConfig(
      { MAIL_TRANSPORT: 'discard', DATABASE_URL: t.url },
      { connect: true, role: 'api', timeoutMs: 4_000 },
    )
    expect({ named: r.problems.some((p) => p.includes(lock.named)), problems: r.problems }).toEqual(
      {
        named: true,
        problems: r.problems,
      },
    )
  } finally {
    await lock.release()
  }
})
