// `bun run bench/drain-timeline.ts [drains] [rows] [concurrencies]`: the engine's drain claim by claim, where a batch's time goes between claims.
//
// The engine in this process as the suite runs it (bench/systems/outbox-engine.ts: production
// defaults, the instant sender), its claim statement wrapped to mark when each claim is asked and
// when its answer is parsed, and each send's start marked. Sends go in claim order, so a claim's rows
// are the sends numbered after the rows claimed before it. Per drain: how long a claim is in flight
// against the whole drain, the claims' execution in the server (pg_stat_statements), and per claim
// the answer → first send, first → last send and answer → next claim asked. One warm-up drain first,
// printed apart. Round 53 (drain53).
import { claimBatch } from '../src/outbox/claim.ts'
import type { DrainerDeps } from '../src/outbox/drainer-deps.ts'
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { outboxEngineSystem } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

await inImageEnv()
const drains = Number(process.argv[2] ?? 4)
const rows = Number(process.argv[3] ?? 20_000)
const concurrencies = (process.argv[4] ?? '10,50').split(',').map(Number)

/** One claim's marks (performance.now()), and how many sends of the drain had begun when it was asked. */
interface Mark {
  asked: number
  answered: number
  rows: number
  sentWhenAsked: number
}
let marks: Mark[] = []
let sends: number[] = []
const claim: NonNullable<DrainerDeps['claim']> = async (db, p) => {
  const m: Mark = { asked: performance.now(), answered: 0, rows: 0, sentWhenAsked: sends.length }
  const r = await claimBatch(db, p)
  m.answered = performance.now()
  m.rows = r.leases.length
  if (m.rows > 0) marks.push(m)
  return r
}

console.log(`before: ${loadAverage()}`)
const cluster = await startBenchCluster()
await cluster.createDatabase('engine')
const probe = await openProbe(cluster.probeUrl('engine'))
const sys = outboxEngineSystem('engine', cluster.url('engine'), probe, claim)
await sys.prepare()

// Statements' execution in the server during the drain: the claims' and the settlements'.
async function executed(name: string) {
  const r = await cluster.admin.query<{ calls: number; ms: number }>(
    `select coalesce(sum(s.calls), 0)::int as calls, coalesce(sum(s.total_exec_time), 0)::float8 as ms
       from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
      where d.datname = 'engine' and u.rolname <> 'bench_probe' and s.query like $1`,
    [`%${name}%`],
  )
  return `${Math.round(r.rows[0]!.ms)} ms in ${r.rows[0]!.calls} calls`
}

const ms = (xs: number[]) =>
  `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`

async function drain(c: number, label = '') {
  await sys.reset()
  marks = []
  sends = []
  await sys.start({ concurrency: c, onStart: () => sends.push(performance.now()) })
  try {
    await Bun.sleep(500)
    await cluster.admin.query('select pg_stat_statements_reset()')
    await sys.insertBulk(rows)
    const committed = performance.now()
    const cpu0 = process.cpuUsage()
    while ((await sys.remaining()) > 0) await Bun.sleep(5)
    const total = performance.now() - committed
    const cpu = process.cpuUsage(cpu0)
    let before = 0
    const claimed = marks.map((m) => {
      const first = sends[before]!
      const last = sends[before + m.rows - 1]!
      const from = before
      before += m.rows
      return { from, toFirst: first - m.answered, span: last - first }
    })
    const inFlight = marks.map((m) => m.answered - m.asked)
    const gap = marks.slice(1).map((m, i) => m.asked - marks[i]!.answered)
    const sentByAsk = marks.slice(1).map((m, i) => m.sentWhenAsked - claimed[i]!.from)
    console.log(
      `${label}c${c}: ${Math.round(rows / (total / 1000))} rows/s, client CPU ${((cpu.user + cpu.system) / rows).toFixed(1)} µs/row; ` +
        `${marks.length} claims of median ${median(marks.map((m) => m.rows))} rows, in flight ` +
        `${Math.round(inFlight.reduce((a, b) => a + b, 0))} of ${Math.round(total)} ms, executing ` +
        `${await executed('claim_batch')} (settlements ${await executed('mark_sent')}); per claim, ms, ` +
        `median (min–max): asked → answer parsed ${ms(inFlight)}, answer → first send ` +
        `${ms(claimed.map((x) => x.toFirst))}, first → last send ${ms(claimed.map((x) => x.span))}, ` +
        `answer → next claim asked ${ms(gap)} with ${median(sentByAsk)} of its rows sent`,
    )
  } finally {
    await sys.stop()
  }
}

try {
  await drain(concurrencies[0]!, 'warm-up: ')
  for (let i = 0; i < drains; i++) for (const c of concurrencies) await drain(c)
} finally {
  await sys.dispose?.()
  await probe.close()
  await cluster.stop()
}
console.log(`after: ${loadAverage()}`)
