// Test-run setup: one Postgres per `bun test` run with a migrated template; each test file clones it.
import { afterAll, afterEach, beforeAll, setDefaultTimeout } from 'bun:test'
import { importsReach } from './support/imports-reach.ts'
import { guardInvalidDates, takeInvalidDateQueries } from './support/invalid-date-guard.ts'
import { startTestCluster, type TestCluster } from './support/postgres.ts'
import { guardQueryOverlaps, takeQueryOverlaps } from './support/query-overlap-guard.ts'

// Integration tests start engines and compile the binary; bounded waits inside them fail first.
// Bun 1.4 keeps this for the run's first file only (bun#43787): the files that start databases,
// engines or processes set it again themselves.
setDefaultTimeout(30_000)

declare global {
  var __outboxTestCluster: Promise<TestCluster> | undefined
}

// Started by the first test file that needs a database (before it, below); runs of files that need none never start Postgres.
export function testCluster(): Promise<TestCluster> {
  globalThis.__outboxTestCluster ??= startTestCluster().catch((err) => {
    // A start cut short (its hook timed out, and Bun killed initdb with it) fails that file only:
    // the next file that needs the cluster starts it again.
    globalThis.__outboxTestCluster = undefined
    throw err
  })
  return globalThis.__outboxTestCluster
}

// The run's one start (initdb, then migrating the template) took over 30 s under load 20 in CI, inside
// the first file's hook, which failed it. A preload's beforeAll runs once, before the run's first file,
// under its own bound: the start happens there when that file needs the cluster (Bun.main is it here),
// so no file's hooks pay for it; a run whose first file needs no database still starts none here.
const CLUSTER_START_BOUND_MS = 300_000
if (importsReach(Bun.main, import.meta.path)) {
  beforeAll(
    async () => {
      let bound: ReturnType<typeof setTimeout> | undefined
      const late = new Promise<never>((_, reject) => {
        bound = setTimeout(
          () =>
            reject(
              new Error(
                `the test run's Postgres did not start and migrate its template within ${CLUSTER_START_BOUND_MS / 1000} s`,
              ),
            ),
          CLUSTER_START_BOUND_MS,
        )
      })
      try {
        await Promise.race([testCluster(), late])
      } finally {
        clearTimeout(bound)
      }
    },
    { timeout: CLUSTER_START_BOUND_MS + 10_000 },
  )
}

afterAll(async () => {
  const cluster = globalThis.__outboxTestCluster
  if (cluster) await (await cluster).stop()
})

// A query handed to a pg client while an earlier one there has not answered is queued by pg@8 and
// refused by pg@9: every test fails that made one (the test's own code or the engine's), naming
// where it was issued (query-overlap-guard.test.ts shows the guard catching one).
guardQueryOverlaps()
afterEach(() => {
  const overlaps = takeQueryOverlaps()
  if (overlaps.length > 0) {
    throw new Error(
      `pg client given a query while busy (${overlaps.length}):\n${overlaps.join('\n\n')}`,
    )
  }
})

// A query given an invalid Date is sent as text Postgres cannot read by pg@8 (warned once per
// process) and refused by pg@9: every test fails that made one (invalid-date-guard.test.ts shows
// the guard catching one).
guardInvalidDates()
afterEach(() => {
  const found = takeInvalidDateQueries()
  if (found.length > 0) {
    throw new Error(`pg query given an invalid Date (${found.length}):\n${found.join('\n\n')}`)
  }
})
