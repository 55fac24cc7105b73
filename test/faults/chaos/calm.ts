// The calm after the chaos: the faults stop, every row must reach a final state, then each process must stop cleanly.
import { type Mailer, within } from '../harness.ts'
import type { ChaosRun } from './chaos-run.ts'
import { checkHeldRows, staleOwedProbes } from './probe-checks.ts'
import { NEXT_MAIL_FROM, PAUSES, WORKERS } from './settings.ts'
import { stopVerdict } from './stop-verdict.ts'
import { LEASE_SECONDS_OF } from './worker-configs.ts'

// Graph answers at once from the calm on: a row due this long into it is held (a pause's end
// never probed, a wake lost), not slow (a Retry-After is 9 s at most, a lease 8 s).
const HELD_BOUND_MS = 30_000
// A reclaim clears a probe owed for a mailbox no worker beating within two lease lengths sends
// from, once per lease length: three of the next release's leases, and the machine's slowness.
const STALE_PROBE_BOUND_MS = 3 * LEASE_SECONDS_OF.next * 1000 + 20_000

/** Resolves with how long the rows took to settle once the faults stopped. */
export async function calm(run: ChaosRun): Promise<number> {
  const { db, graph, mailers, record } = run
  const { workers, api } = mailers
  await run.background.settled()
  record.note('calm: faults stop')
  run.slowDb?.calm()
  graph.fake.setFaults({ latencyMs: 5 })
  if (PAUSES) await completeDeploy(run)
  for (let i = 0; i < WORKERS; i++) if (!workers[i]) await mailers.spawnWorker(i)
  const calmAt = performance.now()
  let heldChecked = false
  await within(
    'every row in a final state after the faults stopped',
    90_000,
    async () => {
      if (!heldChecked && performance.now() - calmAt > HELD_BOUND_MS) {
        heldChecked = true
        await checkHeldRows(db, record, HELD_BOUND_MS)
      }
      const [r] = await db.q<{ live: number }>(
        `select count(*) filter (where status in ('pending', 'sending'))::int as live from mailer.email_outbox`,
      )
      return r!.live === 0 ? true : undefined
    },
    { mailers: workers.filter((w): w is Mailer => w !== null), every: 200 },
  )
  const settleMs = performance.now() - calmAt
  if (PAUSES) await noStaleProbe(run)
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
    // Leases the chaos's last faults took (a Postgres crash ending as the calm began), reclaimed
    // while this worker still waited to record their sends, are found lost at this stop: exit 1,
    // as at a stop during the chaos (seed 5663). Its slots then expire rather than being freed.
    const verdict = stopVerdict(code, (n) => m.logTail(n))
    if (verdict === 'clean') record.gracefulPids.set(m.proc.pid, { from: 0, to: 0 })
    else if (verdict === 'unrecorded') {
      record.figures.stopsUnfinished++
      record.note(`${m.name}: sends unrecorded at the final SIGTERM (their leases lost, reclaimed)`)
    } else
      record.problems.push(`${m.name} exited ${code} after the final SIGTERM\n${m.logTail(10)}`)
  }
  return settleMs
}

/** The rolling deploy completes: each worker of the current release stopped, one of the next started. */
async function completeDeploy(run: ChaosRun): Promise<void> {
  const { mailers, record } = run
  mailers.completeDeploy()
  record.note('calm: the deploy completes')
  for (let i = 0; i < WORKERS; i++) {
    const m = mailers.workers[i]
    if (!m || mailers.releaseOf.get(m.proc.pid) === 'next') continue
    await m.waitReady(30_000).catch(() => m.proc.kill('SIGKILL'))
    const from = performance.now()
    m.proc.kill('SIGTERM')
    const code = await m.exited
    record.note(`deploy: ${m.name} exited ${code}`)
    if (code === 0) record.gracefulPids.set(m.proc.pid, { from, to: performance.now() })
    mailers.workers[i] = null
  }
}

/** No probe stays owed for a mailbox no worker sends from once the deploy changed MAIL_FROM. */
async function noStaleProbe(run: ChaosRun): Promise<void> {
  const t0 = performance.now()
  let stale = await staleOwedProbes(run.db, [NEXT_MAIL_FROM])
  while (stale.length > 0 && performance.now() - t0 < STALE_PROBE_BOUND_MS) {
    await Bun.sleep(500)
    stale = await staleOwedProbes(run.db, [NEXT_MAIL_FROM])
  }
  run.record.note(`stale probes: ${stale.length} after ${Math.round(performance.now() - t0)} ms`)
  if (stale.length > 0)
    run.record.problems.push(
      `probes owed for mailboxes no worker sends from, ${STALE_PROBE_BOUND_MS} ms after the rows settled: ${stale.map((s) => `${s.mailbox} (probe ${s.probe_id ?? 'none'})`).join(', ')}`,
    )
}
