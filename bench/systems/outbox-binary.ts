// outbox-mailer end to end: the compiled binary (`serve`) against the Graph fake on loopback, or discard.
import { freePort } from '../../src/embedded-postgres.ts'
import { type FakeGraph, startFakeGraph } from '../../test/support/fake-graph.ts'
import { imageEnvInEffect } from '../image-env.ts'
import { outboxQueue } from './outbox-engine.ts'
import type { Probe } from './probe.ts'
import type { BenchSystem, StartOptions } from './system.ts'

export interface BinaryRun {
  pid: number
  /** Its HTTP port (health, metrics, API). */
  port: number
  /** Spawn to the first 200 from /readyz. */
  readyMs: number
}

export function outboxBinarySystem(
  database: string,
  url: string,
  probe: Probe,
  bin: string,
  transport: 'graph' | 'discard',
): BenchSystem & { lastRun(): BinaryRun | null } {
  let proc: ReturnType<typeof Bun.spawn> | null = null
  let fake: FakeGraph | null = null
  let run: BinaryRun | null = null
  const queue = outboxQueue(probe)

  async function env(concurrency: number): Promise<Record<string, string>> {
    // As deployed: the release image's environment, then the settings fly.toml and secrets would give.
    const base = {
      ...(await imageEnvInEffect()),
      PATH: process.env.PATH ?? '',
      DATABASE_URL: url,
      MAIL_FROM: 'outbox@example.com',
      API_JWT_SECRET: 'bench-secret-bench-secret-bench-secret',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'error',
      WORKER_CONCURRENCY: String(concurrency),
      MAILBOX_RATE_PER_MINUTE: '0',
    }
    if (transport === 'discard') return { ...base, MAIL_TRANSPORT: 'discard' }
    fake ??= await startFakeGraph({
      clientSecret: 'bench-client-secret',
      concurrencyLimit: 100_000,
    })
    return {
      ...base,
      MAIL_TRANSPORT: 'graph',
      GRAPH_TENANT_ID: fake.tenantId,
      GRAPH_CLIENT_ID: fake.clientId,
      GRAPH_CLIENT_SECRET: 'bench-client-secret',
      GRAPH_AUTHORITY_URL: fake.authorityUrl,
      GRAPH_API_URL: fake.apiUrl,
      GRAPH_MAX_CONCURRENCY: String(Math.min(100, concurrency)),
    }
  }

  return {
    name:
      transport === 'graph'
        ? 'outbox-mailer binary → Graph fake'
        : 'outbox-mailer binary (discard)',
    database,
    ...queue,
    async prepare() {
      const p = Bun.spawn([bin, 'migrate'], { env: await env(10), stdout: 'pipe', stderr: 'pipe' })
      if ((await p.exited) !== 0)
        throw new Error(`migrate failed: ${await new Response(p.stderr).text()}`)
    },
    async start(o: StartOptions) {
      const port = await freePort()
      const e = { ...(await env(o.concurrency)), PORT: String(port) }
      const t0 = performance.now()
      proc = Bun.spawn([bin, 'serve', '--role', 'all'], {
        env: e,
        stdout: 'ignore',
        stderr: 'pipe',
      })
      for (;;) {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null)
        if (res?.status === 200) break
        if (proc.exitCode !== null)
          throw new Error(
            `binary exited ${proc.exitCode}: ${await new Response(proc.stderr as ReadableStream).text()}`,
          )
        if (performance.now() - t0 > 20_000) throw new Error('binary not ready within 20 s')
        await Bun.sleep(2)
      }
      run = { pid: proc.pid, port, readyMs: performance.now() - t0 }
    },
    async stop() {
      proc?.kill('SIGTERM')
      await proc?.exited
      proc = null
    },
    async sendStartsMs() {
      // Each row's first send start as the worker recorded it, just before the transport call: its
      // Date.now(), whole milliseconds, so the middle of that millisecond (the row's created_at, the
      // server's clock at the insert's start, is not the commit the other systems are timed from).
      const rows = await probe.query<{ k: string; ms: number }>(
        `select o.correlation_id as k, (extract(epoch from min(a.started_at)) * 1000)::float8 + 0.5 as ms
           from mailer.email_attempts a join mailer.email_outbox o on o.id = a.outbox_id
          where o.correlation_id is not null and a.started_at is not null
          group by o.correlation_id`,
      )
      return new Map(rows.map((r) => [Number(r.k), r.ms]))
    },
    lastRun: () => run,
    async dispose() {
      await fake?.stop()
      fake = null
    },
  }
}
