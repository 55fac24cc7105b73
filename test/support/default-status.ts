// status's report of the test database as database `default`, judged by status's default thresholds: what its readers of a pause compare.
import { readDatabaseStatus } from '../../src/status/database-status.ts'
import { judge } from '../../src/status/status-report.ts'
import type { DatabaseStatus } from '../../src/status/status-shape.ts'
import type { TestDb } from './db.ts'

/** The database's status (readDatabaseStatus, then judge) with a 600 s pending age and 60 s leases. */
export async function defaultStatus(t: TestDb): Promise<DatabaseStatus> {
  const reading = await readDatabaseStatus(
    { name: 'default', url: t.url, listenUrl: t.url },
    { timeoutMs: 10_000, leaseSeconds: 60 },
  )
  return judge(reading, { maxPendingAgeSeconds: 600, leaseSeconds: 60 }, (s) => s)
}
