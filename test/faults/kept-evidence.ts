// A failing fault scenario's evidence kept past its cleanup: the mailers' logs, the tables, and everything about each id the Graph fake accepted more than once.

import { test as bunTest } from 'bun:test'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { leaveEvidence } from './chaos/evidence.ts'
import { started } from './harness.ts'

/**
 * Keeps what the scenario started so far in a new directory no cleanup removes, and returns its
 * path: per database (`<n>-<database>/`, with each Graph fake when there are several) the
 * chaos soak's evidence (leaveEvidence), each id accepted more than once explained in the output.
 */
export async function keepEvidence(scenario: string): Promise<string> {
  const slug = scenario.replace(/[^a-z0-9]+/gi, '-').toLowerCase()
  const dir = await mkdtemp(join(tmpdir(), `outbox-fault-evidence-${slug}-`))
  for (const [gi, graph] of started.graphs.entries()) {
    for (const [di, db] of started.databases.entries()) {
      const ids = [...graph.acceptedCounts(db.ownsAcceptance)]
        .filter(([, n]) => n > 1)
        .map(([id]) => id)
      const sub = `${started.graphs.length > 1 ? `graph-${gi}-` : ''}${di}-${db.name}`
      await leaveEvidence(join(dir, sub), {
        scenario,
        db,
        graph: graph.fake,
        mailers: started.mailers,
        timeline: [],
        ids,
      })
    }
  }
  return dir
}

/**
 * What keeping the evidence may take after a scenario's bound before bun's own timeout ends the
 * test: bun then kills every process the file started (the mailers, an own cluster), and the
 * afterAll cleanup removes the logs, so a scenario that merely ran out of time kept nothing.
 */
export const KEEPING_MS = 30_000

/**
 * bun:test's test for a fault scenario (its files import this one): when the body throws, or is
 * still running at `timeoutMs` (its bound, checked here while what it started still runs), the
 * evidence is kept (keepEvidence, or the scenario's own `keep`, which returns its directory) and
 * its directory named in the error and in the suite's output; the test fails as it would have.
 * Named `test` so that the scenarios read and format as tests.
 */
export function test(
  name: string,
  body: () => Promise<void>,
  timeoutMs: number,
  keep: () => Promise<string> = () => keepEvidence(name.slice(0, 40)),
) {
  bunTest(
    name,
    async () => {
      let bound: ReturnType<typeof setTimeout> | undefined
      const outlived = new Promise<never>((_, reject) => {
        bound = setTimeout(
          () => reject(new Error(`not finished within its bound of ${timeoutMs} ms`)),
          timeoutMs,
        )
      })
      const run = body()
      // Past its bound the body goes on until the cleanup stops what it waits on: no news then.
      run.catch(() => {})
      try {
        await Promise.race([run, outlived])
      } catch (err) {
        const dir = await keep().catch((e) => `(none kept: ${String(e)})`)
        console.error(`[fault] failed: ${name}; evidence kept in ${dir}`)
        if (err instanceof Error) err.message += `\nevidence kept in ${dir}`
        throw err
      } finally {
        clearTimeout(bound)
      }
    },
    timeoutMs + KEEPING_MS,
  )
}
