// The words of the count of pending rows past their expiresAt, as each reader sees them: the metric's help, /v1/stats' description and status's line.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { ApiDeps } from '../../src/api/context.ts'
import { createMetricFamilies } from '../../src/api/metric-families.ts'
import { statsRoutes } from '../../src/api/routes/stats.ts'
import { oneDatabaseTable } from '../support/one-database-table.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** Said of the rows whichever reader names them; only where the oldest due row's age is read differs. */
const rowsWaiting = (oldestDue: string) =>
  `past their expiresAt (none is sent past it): with GRAPH_MAILBOX_LOOKUP=true, rows whose interrupted send waits to be looked up (not due meanwhile, so not in ${oldestDue}), for up to the lookup grace plus an hour past their expiresAt, then failed expired; besides those, rows no worker has failed yet (each worker's reclaim fails them within LEASE_SECONDS)`

test("outbox_pending_past_expiry's help says which rows it counts: those waiting for a lookup, and (lookups on or off) those no worker has failed yet", async () => {
  const exposition = await createMetricFamilies().registry.metrics()
  expect(/^# HELP outbox_pending_past_expiry (.*)$/m.exec(exposition)?.[1]).toBe(
    `Pending rows ${rowsWaiting('outbox_oldest_pending_age_seconds')}; every process exports the same reading: aggregate with max by (db), not sum, across instances`,
  )
})

test("/v1/stats' pastExpiryPending says the same, naming its own field for the oldest due row", () => {
  const doc = statsRoutes({} as ApiDeps).getOpenAPIDocument({
    openapi: '3.0.0',
    info: { title: 'stats', version: 'test' },
  })
  const schema = doc.components?.schemas?.DatabaseStats as {
    properties: Record<string, { description?: string }>
  }
  expect(schema.properties.pastExpiryPending?.description).toBe(
    `Pending rows ${rowsWaiting('oldestPendingAgeSeconds')}`,
  )
})

test("status's line under the table says the same, naming its OLDEST DUE column", () => {
  const table = oneDatabaseTable({ pastExpiryPending: 2 })
  expect(table.split('\n').filter((l) => l.includes('expiresAt'))).toEqual([
    `default: 2 pending row(s) ${rowsWaiting('OLDEST DUE')}`,
  ])
})
