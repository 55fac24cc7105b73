// Start-to-ready of compiled binaries taking turns on one cluster: spawn → first /readyz 200, for A/B of a start's path.
//
//   bun run bench/start-ready.ts [starts] [binary ...]
//
// Each binary `serve`s one migrated database with the discard transport and WORKER_CONCURRENCY 10,
// in the release image's environment, `starts` times, the binaries alternating start by start so
// that a slower spell of the machine lands on each alike. Without binaries: this checkout's build.
// `/readyz` is polled every 2 ms (as the suite does). Prints each binary's median, range and starts.

import { freePort } from '../src/embedded-postgres.ts'
import { compiledBinary } from '../test/support/binary.ts'
import { startBenchCluster } from './cluster.ts'
import { imageEnvInEffect } from './image-env.ts'
import { median } from './percentiles.ts'

const starts = Number(process.argv[2] ?? 20)
const bins = process.argv.length > 3 ? process.argv.slice(3) : [await compiledBinary()]
const cluster = await startBenchCluster()
try {
  await cluster.createDatabase('start_ready')
  const env = {
    ...(await imageEnvInEffect()),
    PATH: process.env.PATH ?? '',
    DATABASE_URL: cluster.url('start_ready'),
    MAIL_FROM: 'outbox@example.com',
    API_JWT_SECRET: 'bench-secret-bench-secret-bench-secret',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'error',
    MAIL_TRANSPORT: 'discard',
    WORKER_CONCURRENCY: '10',
  }
  const migrate = Bun.spawn([bins[0]!, 'migrate'], { env, stdout: 'pipe', stderr: 'pipe' })
  if ((await migrate.exited) !== 0) {
    throw new Error(`migrate failed: ${await new Response(migrate.stderr).text()}`)
  }
  const ms = new Map<string, number[]>(bins.map((b) => [b, []]))
  for (let i = 0; i < starts; i++) {
    for (const bin of bins) ms.get(bin)!.push(await startToReady(bin, env))
  }
  for (const [bin, v] of ms) {
    console.log(
      `${bin}: median ${median(v).toFixed(0)} ms (${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)}); ${v.map((x) => x.toFixed(0)).join(', ')}`,
    )
  }
} finally {
  await cluster.stop()
}

async function startToReady(bin: string, env: Record<string, string>): Promise<number> {
  const port = await freePort()
  const t0 = performance.now()
  const proc = Bun.spawn([bin, 'serve'], {
    env: { ...env, PORT: String(port) },
    stdout: 'ignore',
    stderr: 'pipe',
  })
  try {
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null)
      if (res?.status === 200) return performance.now() - t0
      if (proc.exitCode !== null) {
        throw new Error(`${bin} exited ${proc.exitCode}: ${await new Response(proc.stderr).text()}`)
      }
      if (performance.now() - t0 > 20_000) throw new Error(`${bin} not ready within 20 s`)
      await Bun.sleep(2)
    }
  } finally {
    proc.kill('SIGTERM')
    await proc.exited
  }
}
