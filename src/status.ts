// `status [--json]`: for every configured database, whether mail is flowing; read-only, bounded, no row data printed.
import { redactor } from './check-config/redactor.ts'
import type { Config } from './config.ts'
import { readDatabaseStatus } from './status/database-status.ts'
import { exitCodeOf, judge } from './status/status-report.ts'
import type { StatusReport } from './status/status-shape.ts'
import { renderStatusTable } from './status/status-table.ts'
import { VERSION } from './version.ts'

export interface StatusOptions {
  json: boolean
  /** A due pending row older than this needs attention. */
  maxPendingAgeSeconds: number
  /** No row sent for longer than this while rows wait on a throttle's pause or Graph out of reach needs attention. */
  maxSendGapSeconds: number
  /** Bounds connecting to a database and each statement. */
  timeoutMs: number
}

/**
 * Reads every database at once, prints the report with the process warnings raised meanwhile
 * (`warnings`), returns the exit code (see HEALTH_EXIT).
 */
export async function status(
  config: Config,
  env: Record<string, string | undefined>,
  o: StatusOptions,
  warnings: () => Promise<string[]>,
): Promise<number> {
  const mask = redactor(env)
  const readings = await Promise.all(
    config.databases.map((d) =>
      readDatabaseStatus(d, {
        timeoutMs: o.timeoutMs,
        leaseSeconds: config.worker.leaseSeconds,
      }),
    ),
  )
  const thresholds = {
    maxPendingAgeSeconds: o.maxPendingAgeSeconds,
    leaseSeconds: config.worker.leaseSeconds,
    maxSendGapSeconds: o.maxSendGapSeconds,
  }
  const databases = readings.map((r) => judge(r, thresholds, mask))
  const report: StatusReport = {
    version: VERSION,
    thresholds,
    exitCode: exitCodeOf(databases),
    warnings: await warnings(),
    databases,
  }
  process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatusTable(report))
  return report.exitCode
}
