// The chaos's faults besides a worker's stop: Postgres stopped or crashed, backends terminated, Graph cut, slowed, its tokens revoked.
import type { ChaosRun } from './chaos-run.ts'
import type { TokenRevocation } from './schedule.ts'

/** In the background: down from now until `outageMs` after the server is gone, then started again. */
export function stopPostgres(run: ChaosRun, how: 'stop' | 'crash', outageMs: number): void {
  const { cluster, record } = run
  run.pgDown = true
  record.figures[how === 'crash' ? 'pgCrashes' : 'pgRestarts']++
  run.background.run(async () => {
    const span = { from: performance.now(), to: Number.POSITIVE_INFINITY }
    record.pgDownSpans.push(span)
    record.note(`postgres ${how} (${outageMs} ms)`)
    if (how === 'crash') await cluster.crash()
    else await cluster.stop()
    record.note('postgres down')
    await Bun.sleep(outageMs)
    await cluster.start()
    record.note('postgres up')
    span.to = performance.now()
    run.pgDown = false
  })
}

export async function terminateBackends({ db, record }: ChaosRun): Promise<void> {
  const n = (
    await db.q<{ n: number }>(
      `select count(*) filter (where pg_terminate_backend(pid))::int as n
         from pg_stat_activity where application_name like 'outbox-mailer%'`,
    )
  )[0]!.n
  record.figures.terminated += n
  record.note(`terminated ${n} backends`)
}

export function cutGraph({ graph, record }: ChaosRun): void {
  const n = graph.cut()
  record.figures.cuts += n
  record.note(`cut ${n} connections to graph`)
}

/** Slow answers keep sends in flight for the kills and cuts to land on. */
export function setLatency({ graph, graphAnswers, record }: ChaosRun, ms: number): void {
  graphAnswers.latencyMs = ms
  graph.fake.setFaults(graphAnswers)
  record.note(`graph latency ${graphAnswers.latencyMs} ms`)
}

/** Graph answers 401 to the token every worker holds; the refresh may meet Entra down. */
export function revokeTokens({ graph, graphAnswers, record }: ChaosRun, r: TokenRevocation): void {
  record.figures.revokes++
  graph.fake.setFaults({
    ...graphAnswers,
    token:
      r.entra === 'hangs'
        ? ['hang']
        : r.entra === '503'
          ? [{ status: 503, error: 'temporarily_unavailable', aadsts: 90033, retryAfter: '1' }]
          : [],
  })
  graph.fake.revokeTokens(r.reason)
  record.note(`tokens revoked (entra ${r.entra})`)
}
