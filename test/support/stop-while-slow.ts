// The slow-database stop: the binary sends 8 rows through a fake Graph, every database answer turns 2 s late, SIGTERM; what the stop did and how long it took.
import pg from 'pg'
import { type DelayingProxy, startDelayingProxy } from './delaying-proxy.ts'
import { pollUntil } from './events.ts'
import { startFakeGraph, type TestCertificate } from './fake-graph.ts'
import { lastLine, spawnGraphBinaryWorker } from './graph-binary-worker.ts'
import type { GrowingOutput } from './growing-output.ts'
import { listeningPort } from './listening-port.ts'

const FROM = 'outbox@contoso.example'
/** The sends in flight when the signal comes. */
export const SENDS_AT_SIGNAL = 8

export interface SlowStop {
  code: number
  stdout: GrowingOutput
  last: ReturnType<typeof lastLine>
  /** The row ids Graph accepted. */
  accepted: string[]
  /** The row ids recorded sent once it had exited. */
  sent: string[]
  /** Connections the binary opened from the signal to its exit. */
  connectionsOpened: number
  /** The statements it sent from the signal to its exit, in order. */
  statements: string[]
  /** From the signal to its exit. */
  exitMs: number
  /** From the signal to the last send recorded (read every 20 ms): null if none was after it. */
  lastRecordedMs: number | null
}

/**
 * `databaseUrl`: the database, reached directly (the binary reaches it through the proxy). The
 * sends take 1.5 s at Graph, so each is in flight when the signal comes, with a grace of 4 s.
 */
export async function stopWhileSlow(o: {
  bin: string
  cert: TestCertificate
  databaseUrl: string
  /** How long each send takes at Graph (default 1.5 s) and the grace (default 4 s). */
  graphMs?: number
  graceSeconds?: number
  /** How many of the sends hang at Graph until the grace aborts them (default none). */
  hung?: number
}): Promise<SlowStop> {
  const proxy = await startDelayingProxy(o.databaseUrl)
  const fake = await startFakeGraph({
    certificates: [o.cert.certPem],
    mailboxes: [FROM],
    concurrencyLimit: 100,
  })
  fake.setFaults({
    latencyMs: o.graphMs ?? 1_500,
    sendMail: Array.from({ length: o.hung ?? 0 }, () => 'hang' as const),
  })
  const reader = new pg.Client({ connectionString: o.databaseUrl })
  await reader.connect()
  const sentCount = async () =>
    Number(
      (
        await reader.query<{ n: string }>(
          `select count(*) as n from mailer.email_outbox where status = 'sent'`,
        )
      ).rows[0]!.n,
    )
  const { p, stdout } = spawnGraphBinaryWorker(o.bin, {
    databaseUrl: proxy.url,
    fake,
    cert: o.cert,
    mailFrom: FROM,
    env: {
      GRAPH_MAX_CONCURRENCY: String(SENDS_AT_SIGNAL),
      WORKER_CONCURRENCY: String(SENDS_AT_SIGNAL),
      SHUTDOWN_GRACE_SECONDS: String(o.graceSeconds ?? 4),
    },
  })
  let code: number
  let at: { connections: number; statements: number; signal: number }
  let lastRecordedMs: number | null = null
  let exitMs: number
  try {
    await listeningPort(stdout, p.exited)
    await reader.query(
      `select mailer.enqueue_email(jsonb_build_object('to', 'someone@contoso.example', 'subject', 'Hello', 'text', 'Hi ' || i))
         from generate_series(1, 20) i`,
    )
    await pollUntil(async () => (fake.inFlight() >= SENDS_AT_SIGNAL ? true : undefined), 30_000)
    // From now on every answer (and notification) reaches the worker 2 s late.
    proxy.delay({ answerMs: 2_000, requestMs: 0 })
    at = signalled(proxy)
    p.kill('SIGTERM')
    const exited = p.exited.then((c) => {
      exitMs = performance.now() - at.signal
      return c
    })
    let sent = await sentCount()
    for (let over = false; !over; ) {
      over = await Promise.race([exited.then(() => true), Bun.sleep(20).then(() => false)])
      const now = await sentCount()
      if (now > sent) lastRecordedMs = performance.now() - at.signal
      sent = now
    }
    code = await exited
  } finally {
    p.kill('SIGKILL')
    proxy.close()
    await fake.stop()
  }
  await stdout.ended
  const { rows } = await reader
    .query<{ id: string }>(`select id::text from mailer.email_outbox where status = 'sent'`)
    .finally(() => reader.end())
  return {
    code,
    stdout,
    last: lastLine(stdout),
    accepted: fake.accepted.map((a) => a.outboxId ?? '?'),
    sent: rows.map((r) => r.id),
    connectionsOpened: proxy.connections() - at.connections,
    statements: proxy
      .statements()
      .slice(at.statements)
      .map((s) => s.text),
    exitMs: exitMs!,
    lastRecordedMs,
  }
}

/**
 * What the binary said (its lines above debug: time, level, message, the signal, origin or reason
 * named, its error if any) and when it exited: a stop that ended otherwise than expected says why
 * (a second signal, an error nothing caught, the bound), where its last line names only the end.
 */
export function stopSaid(r: SlowStop): string {
  const lines = r.stdout
    .text()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.level !== 'debug')
    .map((l) =>
      [l.ts, l.level, l.msg, l.signal ?? l.origin ?? l.reason ?? '', JSON.stringify(l.err) ?? '']
        .filter((v) => v !== '')
        .join(' '),
    )
  return `exit ${r.code} ${Math.round(r.exitMs)} ms after the signal; the binary said:\n${lines.join('\n')}`
}

function signalled(proxy: DelayingProxy) {
  return {
    connections: proxy.connections(),
    statements: proxy.statements().length,
    signal: performance.now(),
  }
}
