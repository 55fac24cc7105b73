// outbox-mailer end to end: the compiled binary (`serve`) against the Graph fake on loopback, or discard.
import { readdir, readFile, readlink } from 'node:fs/promises'
import { freePort } from '../../src/embedded-postgres/free-port.ts'
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

/** Starts of the binary on a port found free, when each finds it taken by then. */
const PORT_TRIES = 3

/**
 * Milliseconds from `t0` to the binary's first 200 from /readyz (polled every 2 ms), or 'port taken'
 * when it exited because another process holds `port`. A 200 counts once the listening socket is
 * seen to be this binary's (after the time is taken): whoever else holds the port (another run's
 * outbox-mailer) may answer it too.
 */
async function readyOn(
  p: ReturnType<typeof Bun.spawn>,
  port: number,
  t0: number,
): Promise<number | 'port taken'> {
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null)
    if (res?.status === 200) {
      const readyMs = performance.now() - t0
      if (await listensOn(p.pid, port)) return readyMs
    }
    if (p.exitCode !== null) {
      const stderr = await new Response(p.stderr as ReadableStream).text()
      if (p.exitCode === 1 && stderr.includes(`:${port} (HOST, PORT): another program holds`))
        return 'port taken'
      throw new Error(`binary exited ${p.exitCode}: ${stderr}`)
    }
    if (performance.now() - t0 > 20_000) throw new Error('binary not ready within 20 s')
    await Bun.sleep(2)
  }
}

/** Whether process `pid` holds a TCP socket listening on `port` (Linux: /proc's socket inodes). */
async function listensOn(pid: number, port: number): Promise<boolean> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  const inodes = new Set<string>()
  const tables = ['/proc/net/tcp', '/proc/net/tcp6']
  const texts = await Promise.all(tables.map((t) => readFile(t, 'utf8').catch(() => null)))
  // No /proc (not Linux): the 200 is taken as this binary's, as before.
  if (texts.every((t) => t === null)) return true
  for (const text of texts) {
    if (text === null) continue
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // local_address is ADDR:PORT in hex; st 0A is LISTEN; the inode is the tenth field.
      if (f[1]?.endsWith(`:${hex}`) && f[3] === '0A' && f[9]) inodes.add(f[9])
    }
  }
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
    if (inode && inodes.has(inode)) return true
  }
  return false
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
      // PORT from freePort(), not 0: the bench runs the binary at LOG_LEVEL=error, as measured,
      // so no "http listening" line names a port of the system's choice. A port found free can be
      // another process's by the bind (runs side by side): the binary then exits 1 naming it
      // (HOST, PORT), and the start is made again on another, its clock started anew.
      for (let tries = 1; ; tries++) {
        const port = await freePort()
        const e = { ...(await env(o.concurrency)), PORT: String(port) }
        const t0 = performance.now()
        const p = Bun.spawn([bin, 'serve', '--role', 'all'], {
          env: e,
          stdout: 'ignore',
          stderr: 'pipe',
        })
        proc = p
        const ready = await readyOn(p, port, t0)
        if (ready === 'port taken' && tries < PORT_TRIES) continue
        if (ready === 'port taken')
          throw new Error(`binary found ${PORT_TRIES} free ports taken before it bound them`)
        run = { pid: p.pid, port, readyMs: ready }
        return
      }
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
