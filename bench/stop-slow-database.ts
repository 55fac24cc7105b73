// A SIGTERM stop while every database answer is 2 s late, compiled binaries taking turns: signal to the last send recorded and to the exit, and the statements and connections the stop used.
//
//   bun run bench/stop-slow-database.ts [rounds] [binary ...]
//
// Each round runs each binary once (test/support/stop-while-slow.ts: 8 sends in flight at Graph,
// 1.5 s each, then every answer 2 s late through a delaying proxy and SIGTERM, grace 4 s), each on
// a freshly migrated database of one cluster, the binaries alternating so that a slower spell of
// the machine lands on each alike. Without binaries: this checkout's build. STOP_SLOW_GRAPH_MS and
// STOP_SLOW_GRACE change the send's time at Graph and the grace; STOP_SLOW_HUNG=n hangs the first n
// sends at Graph until the grace aborts them ("last recorded" is then the others' recording).
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { compiledBinary } from '../test/support/binary.ts'
import { generateTestCertificate } from '../test/support/fake-graph.ts'
import { stopWhileSlow } from '../test/support/stop-while-slow.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'

const rounds = Number(process.argv[2] ?? 3)
const bins = process.argv.length > 3 ? process.argv.slice(3) : [await compiledBinary()]
const cert = await generateTestCertificate()
const cluster = await startBenchCluster()
interface Run {
  exitMs: number
  lastRecordedMs: number
  statements: number
  connections: number
  unrecorded: number
}
const runs = bins.map(() => [] as Run[])
try {
  for (let i = 0; i < rounds; i++) {
    for (const [b, bin] of bins.entries()) {
      const name = `stop_slow_${i}_${b}`
      await cluster.createDatabase(name)
      await migrate({ url: cluster.url(name), log: silentLogger })
      const r = await stopWhileSlow({
        bin,
        cert,
        databaseUrl: cluster.url(name),
        ...(process.env.STOP_SLOW_GRAPH_MS && { graphMs: Number(process.env.STOP_SLOW_GRAPH_MS) }),
        ...(process.env.STOP_SLOW_GRACE && { graceSeconds: Number(process.env.STOP_SLOW_GRACE) }),
        ...(process.env.STOP_SLOW_HUNG && { hung: Number(process.env.STOP_SLOW_HUNG) }),
      })
      runs[b]!.push({
        exitMs: r.exitMs,
        lastRecordedMs: r.lastRecordedMs ?? Number.NaN,
        statements: r.statements.length,
        connections: r.connectionsOpened,
        unrecorded: r.accepted.filter((id) => !r.sent.includes(id)).length,
      })
      const last = runs[b]!.at(-1)!
      console.log(
        `round ${i + 1} ${bin}: exit ${last.exitMs.toFixed(0)} ms, last recorded ${last.lastRecordedMs.toFixed(0)} ms, ${last.statements} statements, ${last.connections} connections opened, ${last.unrecorded} unrecorded; ${r.statements.map((s) => s.replace(/\s+/g, ' ').trim().slice(0, 40)).join(' | ')}`,
      )
    }
  }
} finally {
  await cluster.stop()
}
const first = runs[0]!
for (const [b, bin] of bins.entries()) {
  const rs = runs[b]!
  const m = (f: (r: Run) => number) => median(rs.map(f))
  console.log(
    `${bin}: median exit ${m((r) => r.exitMs).toFixed(0)} ms, last recorded ${m((r) => r.lastRecordedMs).toFixed(0)} ms, statements ${m((r) => r.statements)}, connections opened ${m((r) => r.connections)}, unrecorded ${rs.reduce((n, r) => n + r.unrecorded, 0)}` +
      (b === 0
        ? ''
        : `; exit ratio to the first, round by round: ${rs.map((r, i) => (r.exitMs / first[i]!.exitMs).toFixed(2)).join(', ')}`),
  )
}
