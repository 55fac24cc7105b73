// The chaos's faults besides a worker's stop: Postgres stopped or crashed, backends terminated, Graph cut, slowed, its tokens revoked.
import type { ChaosRun } from './chaos-run.ts'
import type { MailboxThrottle, TokenRevocation } from './schedule.ts'

/**
 * In the background: down from now until `outageMs` after the server is gone, then started again;
 * a crash `delayMs` from now (the harness marks Postgres down at once: no other action meanwhile).
 */
export function stopPostgres(
  run: ChaosRun,
  how: 'stop' | 'crash',
  outageMs: number,
  delayMs = 0,
): void {
  const { cluster, record } = run
  run.pgDown = true
  record.figures[how === 'crash' ? 'pgCrashes' : 'pgRestarts']++
  run.background.run(async () => {
    if (delayMs > 0) await Bun.sleep(delayMs)
    const span = { from: performance.now(), to: Number.POSITIVE_INFINITY }
    record.pgDownSpans.push(span)
    record.note(
      `postgres ${how} (${outageMs} ms${delayMs > 0 ? `, ${delayMs} ms after an enqueue` : ''})`,
    )
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

export async function terminateBackends(run: ChaosRun): Promise<void> {
  const n = await terminate(run, 'outbox-mailer%')
  run.record.figures.terminated += n
  run.record.note(`terminated ${n} backends`)
}

/**
 * The LISTEN sessions alone: the pools go on, the wake-ups and what rides the shared session stop.
 * With them the probe sessions of a LISTEN session's setup (`outbox-mailer:listen-probe`; an older
 * release's name theirs the listener too), so that a setup is still cut where it is.
 */
export async function killListeners(run: ChaosRun): Promise<void> {
  const n = await terminate(run, 'outbox-mailer:listen%')
  run.record.figures.listenerKills += n
  run.record.note(`terminated ${n} listener sessions`)
}

async function terminate({ db }: ChaosRun, applicationName: string): Promise<number> {
  const [r] = await db.q<{ n: number }>(
    `select count(*) filter (where pg_terminate_backend(pid))::int as n
       from pg_stat_activity where application_name like $1`,
    [applicationName],
  )
  return r!.n
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
  record.revokedWith[r.entra]++
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

/** One mailbox answered 429 with its own Retry-After for `forMs` (graph-mix.ts); the others send. */
export function throttleMailbox({ mailboxThrottles, record }: ChaosRun, t: MailboxThrottle): void {
  record.figures.mailboxThrottles++
  mailboxThrottles.set(t.mailbox, { until: Date.now() + t.forMs, retryAfterS: t.retryAfterS })
  record.note(`${t.mailbox} throttled ${t.forMs} ms, Retry-After ${t.retryAfterS}`)
}
