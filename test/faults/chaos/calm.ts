// The calm after the chaos: the faults stop, every row must reach a final state, then each process must stop cleanly.
import { type Mailer, within } from '../harness.ts'
import type { ChaosRun } from './chaos-run.ts'
import { WORKERS } from './settings.ts'

/** Resolves with how long the rows took to settle once the faults stopped. */
export async function calm(run: ChaosRun): Promise<number> {
  const { db, graph, mailers, record } = run
  const { workers, api } = mailers
  await run.background.settled()
  record.note('calm: faults stop')
  graph.fake.setFaults({ latencyMs: 5 })
  for (let i = 0; i < WORKERS; i++) if (!workers[i]) await mailers.spawnWorker(i)
  const calmAt = performance.now()
  await within(
    'every row in a final state after the faults stopped',
    90_000,
    async () => {
      const [r] = await db.q<{ live: number }>(
        `select count(*) filter (where status in ('pending', 'sending'))::int as live from mailer.email_outbox`,
      )
      return r!.live === 0 ? true : undefined
    },
    { mailers: workers.filter((w): w is Mailer => w !== null), every: 200 },
  )
  const settleMs = performance.now() - calmAt
  for (const m of [...workers, api]) {
    if (!m) continue
    // A worker respawned as the faults stopped may still be starting (a quick settle, a loaded
    // machine): before its signal handlers exist, SIGTERM ends it like SIGKILL (143).
    const ready = await m.waitReady(30_000).then(
      () => true,
      (e) => {
        record.problems.push(`${m.name} not ready after the faults stopped: ${String(e)}`)
        return false
      },
    )
    if (!ready) continue
    record.note(`final SIGTERM ${m.name} (pid ${m.proc.pid})`)
    m.proc.kill('SIGTERM')
    const code = await m.exited
    if (code === 0) record.gracefulPids.set(m.proc.pid, { from: 0, to: 0 })
    else record.problems.push(`${m.name} exited ${code} after the final SIGTERM`)
  }
  return settleMs
}
