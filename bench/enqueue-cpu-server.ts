// The API of one checkout's source, listening for bench/enqueue-cpu.ts: `bun run bench/enqueue-cpu-server.ts <checkout> <database url>`.
//
// Imports createApp from <checkout>/src (this checkout's or another's, e.g. a worktree of an earlier
// commit), serves it with Bun.serve as `serve` does, in dev mode (no token to verify) on a port of
// the system's choice, and writes that port on stdout. Runs until killed.

// Typed as this checkout's modules: the other checkout's are taken to have the same shape.
import type * as AppModule from '../src/api/app.ts'
import type * as MetricsModule from '../src/api/metrics.ts'
import type * as OpenModule from '../src/db/open.ts'
import type * as LogModule from '../src/log.ts'

const [checkout, url] = process.argv.slice(2)
if (!checkout || !url) {
  console.error('usage: bun run bench/enqueue-cpu-server.ts <checkout> <database url>')
  process.exit(2)
}
const { createApp } = (await import(`${checkout}/src/api/app.ts`)) as typeof AppModule
const { createMetrics } = (await import(`${checkout}/src/api/metrics.ts`)) as typeof MetricsModule
const { openDb } = (await import(`${checkout}/src/db/open.ts`)) as typeof OpenModule
const { silentLogger } = (await import(`${checkout}/src/log.ts`)) as typeof LogModule

const handle = openDb({ name: 'default', url, log: silentLogger })
const health = {
  readiness: async () => [],
  listenerStates: () => [],
  liveness: () => ({ ok: true, problems: [] }),
}
const databases = [{ name: 'default', db: handle.db, pool: handle.pool }]
const app = createApp({
  databases,
  auth: { jwtSecret: null, jwksUrl: null, issuer: null, audience: null },
  dev: true,
  health,
  metrics: createMetrics({
    databases: databases.map((d) => ({ ...d, statements: handle.statements })),
    health,
  }),
  log: silentLogger,
  version: 'bench',
  rateLimitPerMinute: 0,
})
const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: app.fetch })
console.log(server.port)
// Exits (rather than dies) on a signal, so that a profiler given to this process (bun --cpu-prof) writes its file.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0))
