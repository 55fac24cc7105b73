// status's table for one database named default, healthy, with the fields a test sets: the lines under the table are what such tests read.
import type { DatabaseStatus } from '../../src/status/status-shape.ts'
import { renderStatusTable } from '../../src/status/status-table.ts'

/** The table of a report holding database `default` (health ok, no reasons) with `fields` laid on top. */
export function oneDatabaseTable(fields: Partial<DatabaseStatus>): string {
  return renderStatusTable({
    version: 'test',
    thresholds: { maxPendingAgeSeconds: 600, leaseSeconds: 60 },
    exitCode: 0,
    warnings: [],
    databases: [{ name: 'default', health: 'ok', reasons: [], ...fields } as DatabaseStatus],
  })
}
