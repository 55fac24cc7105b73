// status while a hand session's exclusive lock holds a mailer table: bounded, the database reached, and the lock and its holder named in the reason.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { readDatabaseStatus } from '../../src/status/database-status.ts'
import { judge } from '../../src/status/status-report.ts'
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

for (const table of ['schema_migrations', 'email_outbox']) {
  test(`an exclusive lock on mailer.${table} held by a hand session: named with its holder, not an unreachable database`, async () => {
    const lock = await holdHandLock(t.url, `mailer.${table}`)
    try {
      const reading = await readDatabaseStatus(
        { name: 'default', url: t.url, listenUrl: t.url },
        { timeoutMs: 4_000, leaseSeconds: 60 },
      )
      const judged = judge(reading, { maxPendingAgeSeconds: 300, leaseSeconds: 60 }, (s) => s)
      expect({
        health: judged.health,
        named: judged.reasons.some((r) => r.includes(lock.named)),
        reasons: judged.reasons,
      }).toEqual({ health: 'attention', named: true, reasons: judged.reasons })
    } finally {
      await lock.release()
    }
  })
}
