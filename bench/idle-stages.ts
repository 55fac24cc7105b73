// `bun run bench/idle-stages.ts [cycles] [rows] [warm rows]`: a pickup after an idle spell, stage by stage, the engine's against graphile-worker's.
//
// As bench/idle-pickup-turns.ts runs them (each system's client in a process of its own, started
// together each cycle, idle 11 s, `rows` rows one gap apart spread across the gaps, the order
// rotated), with every pg client of those processes traced (bench/systems/pg-trace.ts) and the
// cluster logging each statement's duration. After a cycle's idle rows come `warm rows` more per
// system, 70 ms apart (the same path, warm), to set the idle spell's cost apart from the path's.
// Per row, from the insert's acknowledged commit as the suite times it: the insert sent (negative),
// the notification's arrival in the system's process, the claim called (ours: outbox_claim_*;
// graphile-worker's: its get_job), its answer, the handler's start; and the server's logged
// parse + bind + execute of that claim (its commit, at Sync, is not logged: trip − server is the
// wire, the commit with its WAL flush, and the client's parse). Printed: per system and kind of row
// (row 1, rows 2+, warm), the medians of each stage; then the engine's stages less
// graphile-worker's, paired by cycle and row. And over the 50 ms from each insert on (the pickup and
// its settlement): the CPU time and run-queue wait of the system's client process (main thread) and
// of its database's backends (/proc/…/schedstat), its work apart from a loaded machine's waits.
// STAGES_UNFLUSHED=1: both systems' commits without waiting for the WAL flush (the disk apart);
// STAGES_GC=1: a full collection in each system's process 300 ms (STAGES_GC_LEAD_MS) before each
// warm row; STAGES_ROWS=1:
// every row's stages. STAGES_ENGINE_FROM=<another checkout>: one more engine, that checkout's client
// code (as bench/idle-pickup-turns.ts's PICKUP_ENGINE_FROM), paired against this one's (round 34);
// STAGES_ENGINE_ENV='NAME=value …': variables for this checkout's engine's process alone (e.g.
// BUN_GC_TIMER_DISABLE=1), the other engine's as the run's.
// `uptime` before and after.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { latencyWindow } from './latency.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { type PickupStage, pickupStages } from './pickup-stages.ts'
import { graphileSystem } from './systems/graphile.ts'
import { hostedSystem } from './systems/hosted.ts'
import { outboxEngineSystem } from './systems/outbox-engine.ts'
import type { PgTraceEvent } from './systems/pg-trace.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

const cycles = Number(process.argv[2] ?? 6)
const rows = Number(process.argv[3] ?? 3)
const warmRows = Number(process.argv[4] ?? 3)
const GAP_MS = 11_000
const WARM_STEP_MS = 20
const unflushed = process.env.STAGES_UNFLUSHED === '1'
const gcBeforeWarm = process.env.STAGES_GC === '1'
// How long before a warm row its collection runs (the allocator gives memory back on a delay).
const gcLeadMs = Number(process.env.STAGES_GC_LEAD_MS ?? 300)
const otherCheckout = process.env.STAGES_ENGINE_FROM || undefined
const engineEnv = Object.fromEntries(
  (process.env.STAGES_ENGINE_ENV ?? '')
    .split(/\s+/)
    .filter((x) => x.includes('='))
    .map((x) => [x.slice(0, x.indexOf('=')), x.slice(x.indexOf('=') + 1)]),
)
// The systems' processes with the release image's environment (its allocator setting), as in the suite's run.
await inImageEnv()
process.env.BENCH_PG_TRACE = '1'
const allocator = Object.entries(process.env)
  .filter(([k]) => k.startsWith('MIMALLOC_'))
  .map(([k, v]) => `${k}=${v}`)
  .join(' ')
console.log(`before: ${loadAverage()}; ${allocator}`)

// Server lines: "<epoch s.ms> [pid] <database> LOG:  duration: x ms  parse|bind|execute <name>: …".
const serverLines: { at: number; db: string; ms: number; text: string }[] = []
const cluster = await startBenchCluster({
  extraFlags: ['-c', 'log_min_duration_statement=0', '-c', 'log_line_prefix=%n [%p] %d '],
  onLogLine: (l) => {
    const m = /^(\d+\.\d+) \[\d+\] (\S+) LOG: {2}duration: ([\d.]+) ms {2}(.*)$/.exec(l)
    if (m) serverLines.push({ at: Number(m[1]) * 1000, db: m[2]!, ms: Number(m[3]), text: m[4]! })
  },
})
const toEpoch = (t: number) => performance.timeOrigin + t

// Time on a CPU and waiting on a run queue (ns) of a thread (/proc/<pid>/task/<tid>/schedstat):
// a pickup's work apart from the waits a loaded machine adds to it.
type Sched = { run: number; wait: number }
const schedOf = (pid: number, tid = pid): Sched => {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')
      .split(' ')
      .map(Number)
    return { run: run!, wait: wait! }
  } catch {
    return { run: 0, wait: 0 }
  }
}
// Minor page faults of a whole process (/proc/<pid>/stat's 10th field): memory given back while idle and touched again.
const faultsOf = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7])
  } catch {
    return 0
  }
}
const CPU_WINDOW_MS = 50
type Cpu = {
  'client run': number
  'client wait': number
  'client faults': number
  'server run': number
  'server wait': number
}
const CPU_KEYS: (keyof Cpu)[] = [
  'client run',
  'client wait',
  'client faults',
  'server run',
  'server wait',
]

interface Traced {
  label: string
  sys: BenchSystem
  channel: string
  claim: RegExp
  serverClaim: RegExp
}
const probes: Probe[] = []
async function place(
  label: string,
  key: string,
  make: (url: string, p: Probe) => BenchSystem,
  channel: string,
  claim: RegExp,
  serverClaim: RegExp,
  checkout?: string,
): Promise<Traced> {
  await cluster.createDatabase(key)
  const probe = await openProbe(cluster.probeUrl(key))
  probes.push(probe)
  const url = cluster.url(key)
  const sys = checkout
    ? hostedSystem('outbox_engine', url, make(url, probe), join(checkout, 'bench/systems/host.ts'))
    : hostedSystem(key, url, make(url, probe), undefined, key === 'outbox_engine' ? engineEnv : {})
  await sys.prepare()
  return { label, sys, channel, claim, serverClaim }
}

type Stage = PickupStage | 'server'
type Kind = 'row 1' | 'rows 2+' | 'warm'
interface RowStages {
  system: string
  kind: Kind
  cycle: number
  row: number
  stages: Partial<Record<Stage, number>>
  claim?: string
  cpu?: Cpu
}
const STAGES: Stage[] = ['sent', 'notified', 'claim called', 'claim answered', 'started', 'server']
const table: RowStages[] = []

function stagesOf(
  t: Traced,
  trace: PgTraceEvent[],
  row: { sentAt: number; committedAt: number; startedAt?: number },
): { stages: Partial<Record<Stage, number>>; claim?: string } {
  const found: { stages: Partial<Record<Stage, number>>; claim?: string } = pickupStages(
    t,
    trace,
    row,
  )
  // The server logs a statement's parse, bind and execute as each ends (ms resolution times).
  const from = toEpoch(row.sentAt) - 2
  const to = toEpoch(row.startedAt ?? row.committedAt + 50) + 2
  const server = serverLines.filter(
    (l) => l.db === t.sys.database && l.at >= from && l.at <= to && t.serverClaim.test(l.text),
  )
  if (server.length > 0) found.stages.server = server.reduce((a, l) => a + l.ms, 0)
  return found
}

// pg_stat_statements' figures for each system's claim, summed by kind of row: the server's own
// execution time and the WAL the claim wrote (its commit record aside), full-page images apart.
type Stmt = { calls: number; ms: number; records: number; fpi: number; bytes: number }
const zero = (): Stmt => ({ calls: 0, ms: 0, records: 0, fpi: 0, bytes: 0 })
async function claimStats(): Promise<Map<string, Stmt>> {
  const r = await cluster.admin.query<{ db: string } & Record<keyof Stmt, string>>(
    `select d.datname as db, sum(s.calls) as calls, sum(s.total_exec_time) as ms,
            sum(s.wal_records) as records, sum(s.wal_fpi) as fpi, sum(s.wal_bytes) as bytes
       from pg_stat_statements s join pg_database d on d.oid = s.dbid
      where s.query ~ 'claim_notified|j_raw' group by d.datname`,
  )
  return new Map(
    r.rows.map((x) => [
      x.db,
      { calls: +x.calls, ms: +x.ms, records: +x.records, fpi: +x.fpi, bytes: +x.bytes },
    ]),
  )
}
const statsByKind = new Map<string, Stmt>()
function addStats(kind: string, before: Map<string, Stmt>, after: Map<string, Stmt>) {
  for (const [db, a] of after) {
    const b = before.get(db) ?? zero()
    const key = `${db} ${kind}`
    const t = statsByKind.get(key) ?? zero()
    for (const k of Object.keys(t) as (keyof Stmt)[]) t[k] += a[k] - b[k]
    statsByKind.set(key, t)
  }
}

const GRAPHILE = 'graphile-worker (batched)'
const ENGINE = 'outbox-mailer engine'
const OTHER = `outbox-mailer engine of ${otherCheckout}`
const systems: Traced[] = []
try {
  systems.push(
    await place(
      GRAPHILE,
      'graphile_batched',
      (url, p) => graphileSystem('graphile_batched', url, p, true),
      'jobs:insert',
      /^with j_raw as/,
      /get_job/,
    ),
    await place(
      ENGINE,
      'outbox_engine',
      (url, p) => outboxEngineSystem('outbox_engine', url, p),
      'mailer_outbox',
      /^outbox_claim/,
      /claim_(notified|batch|unflushed)/,
    ),
  )
  if (otherCheckout)
    systems.push(
      await place(
        OTHER,
        'outbox_engine_other',
        (url, p) => outboxEngineSystem('outbox_engine_other', url, p),
        'mailer_outbox',
        /^outbox_claim/,
        /claim_(notified|batch|unflushed)/,
        otherCheckout,
      ),
    )
  // The disk's flush apart: every commit of both systems without waiting for it.
  if (unflushed) {
    for (const s of systems)
      await cluster.admin.query(`alter database ${s.sys.database} set synchronous_commit = off`)
  }
  for (const s of systems)
    await latencyWindow(s.sys, { perSecond: 50, seconds: 1, concurrency: 10 })
  for (let c = 1; c <= cycles; c++) {
    const order = rotated(systems, c - 1)
    // Per system, by key: the insert sent, its commit acknowledged, the handler started.
    const sent = new Map<string, Map<number, number>>(order.map((s) => [s.label, new Map()]))
    const acked = new Map<string, Map<number, number>>(order.map((s) => [s.label, new Map()]))
    const starts = new Map<string, Map<number, number>>(order.map((s) => [s.label, new Map()]))
    const onStart =
      (label: string) =>
      (key: number, atMs = performance.now()) => {
        const m = starts.get(label)!
        if (key > 0 && !m.has(key)) m.set(key, atMs)
      }
    for (const s of order) await s.sys.reset()
    for (const s of order) await s.sys.clientTrace?.()
    await Promise.all(order.map((s) => s.sys.start({ concurrency: 10, onStart: onStart(s.label) })))
    // Over the CPU_WINDOW_MS from the insert on (the pickup and what follows it: the settlement):
    // the system's client process's main thread, and its database's backends (the probe's aside).
    const cpu = new Map<string, Map<number, Cpu>>(order.map((s) => [s.label, new Map()]))
    const insert = async (s: Traced, key: number) => {
      const backends = (
        await cluster.admin.query<{ pid: number }>(
          `select pid from pg_stat_activity where datname = $1 and usename <> 'bench_probe'`,
          [s.sys.database],
        )
      ).rows.map((r) => r.pid)
      const pid = s.sys.clientPid?.() ?? null
      const snap = () => {
        const client =
          pid === null ? { run: 0, wait: 0, faults: 0 } : { ...schedOf(pid), faults: faultsOf(pid) }
        const server = backends.map((b) => schedOf(b))
        return {
          client,
          server: {
            run: server.reduce((a, x) => a + x.run, 0),
            wait: server.reduce((a, x) => a + x.wait, 0),
          },
        }
      }
      const before = snap()
      const t0 = performance.now()
      sent.get(s.label)!.set(key, t0)
      await s.sys.insertOne(key)
      acked.get(s.label)!.set(key, performance.now())
      await Bun.sleep(Math.max(0, t0 + CPU_WINDOW_MS - performance.now()))
      const after = snap()
      cpu.get(s.label)!.set(key, {
        'client run': (after.client.run - before.client.run) / 1e6,
        'client wait': (after.client.wait - before.client.wait) / 1e6,
        'client faults': after.client.faults - before.client.faults,
        'server run': (after.server.run - before.server.run) / 1e6,
        'server wait': (after.server.wait - before.server.wait) / 1e6,
      })
    }
    const step = GAP_MS / order.length
    const begin = performance.now() + GAP_MS
    // After the start's own claims (the engine's primed claim, both systems' first looks).
    await Bun.sleep(GAP_MS / 2)
    const atStart = await claimStats()
    for (let r = 0; r < rows; r++) {
      for (const [i, s] of order.entries()) {
        const wait = begin + r * GAP_MS + i * step - performance.now()
        if (wait > 0) await Bun.sleep(wait)
        await insert(s, r + 1)
      }
    }
    // Warm rows: one system at a time, 70 ms apart (the CPU window, then 20 ms), after half a gap.
    await Bun.sleep(step)
    const afterIdle = await claimStats()
    addStats('after idle', atStart, afterIdle)
    for (const s of order) {
      for (let w = 1; w <= warmRows; w++) {
        // STAGES_GC=1: a full collection in the system's process 300 ms before each warm row: what
        // a collection during an idle spell leaves the next pickup (code, caches, memory).
        if (gcBeforeWarm) {
          await s.sys.clientGc?.()
          await Bun.sleep(gcLeadMs)
        }
        await insert(s, rows + w)
        await Bun.sleep(WARM_STEP_MS)
      }
      await Bun.sleep(200)
    }
    for (const s of order) {
      const deadline = performance.now() + 5000
      while (performance.now() < deadline && (await s.sys.remaining()) > 0) await Bun.sleep(20)
    }
    addStats('warm', afterIdle, await claimStats())
    await Promise.all(order.map((s) => s.sys.stop()))
    for (const s of order) {
      const trace = (await s.sys.clientTrace?.()) ?? []
      for (let key = 1; key <= rows + warmRows; key++) {
        const sentAt = sent.get(s.label)!.get(key)!
        const committedAt = acked.get(s.label)!.get(key)!
        const startedAt = starts.get(s.label)!.get(key)
        const row =
          startedAt === undefined ? { sentAt, committedAt } : { sentAt, committedAt, startedAt }
        const { stages, claim } = stagesOf(s, trace, row)
        table.push({
          system: s.label,
          kind: key === 1 ? 'row 1' : key <= rows ? 'rows 2+' : 'warm',
          cycle: c,
          row: key,
          stages,
          ...(claim ? { claim } : {}),
          ...(cpu.get(s.label)!.has(key) ? { cpu: cpu.get(s.label)!.get(key)! } : {}),
        })
      }
    }
    const line = (label: string) =>
      table
        .filter((t) => t.system === label && t.cycle === c && t.kind !== 'warm')
        .map((t) => t.stages.started?.toFixed(1) ?? '–')
        .join(' / ')
    console.log(
      `cycle ${c}/${cycles}: ${systems.map((s) => `${s.label} ${line(s.label)}`).join('; ')}; ${loadAverage()}`,
    )
  }
  const fmt = (x: number) => (Number.isNaN(x) ? '–' : x.toFixed(2))
  const KINDS: Kind[] = ['row 1', 'rows 2+', 'warm']
  console.log(
    `\n${cycles} cycles, ${rows} rows ${GAP_MS / 1000} s apart then ${warmRows} warm rows ${WARM_STEP_MS + CPU_WINDOW_MS} ms apart; ms after the acknowledged commit (server: the claim's logged parse + bind + execute), medians`,
  )
  console.table(
    systems.flatMap((s) =>
      KINDS.map((kind) => {
        const mine = table.filter((t) => t.system === s.label && t.kind === kind)
        const out: Record<string, string | number> = { system: s.label, kind, n: mine.length }
        for (const st of STAGES) {
          const xs = mine.flatMap((t) => (t.stages[st] === undefined ? [] : [t.stages[st]!]))
          out[st] = fmt(median(xs))
        }
        for (const k of CPU_KEYS)
          out[k] = fmt(median(mine.flatMap((t) => (t.cpu ? [t.cpu[k]] : []))))
        return out
      }),
    ),
  )
  // Paired: the engine's stage durations less graphile-worker's, same cycle and row.
  const span = (t: RowStages, a: Stage, b: Stage) =>
    t.stages[a] !== undefined && t.stages[b] !== undefined ? t.stages[b]! - t.stages[a]! : undefined
  const SPANS: [string, Stage | 'commit', Stage][] = [
    ['commit→notified', 'commit', 'notified'],
    ['notified→called', 'notified', 'claim called'],
    ['claim trip', 'claim called', 'claim answered'],
    ['answered→started', 'claim answered', 'started'],
    ['commit→started', 'commit', 'started'],
  ]
  const spanOf = (t: RowStages, a: Stage | 'commit', b: Stage) =>
    a === 'commit' ? t.stages[b] : span(t, a, b)
  console.log(
    'stage durations (ms, medians) and the engine less graphile-worker, paired by cycle and row',
  )
  console.table(
    KINDS.flatMap((kind) =>
      SPANS.map(([name, a, b]) => {
        const eng = table.filter((t) => t.system === ENGINE && t.kind === kind)
        const gra = table.filter((t) => t.system === GRAPHILE && t.kind === kind)
        const diffs = eng.flatMap((e) => {
          const g = gra.find((x) => x.cycle === e.cycle && x.row === e.row)
          const x = spanOf(e, a, b)
          const y = g && spanOf(g, a, b)
          return x === undefined || y === undefined ? [] : [x - y]
        })
        const med = (ts: RowStages[]) =>
          fmt(median(ts.flatMap((t) => (spanOf(t, a, b) === undefined ? [] : [spanOf(t, a, b)!]))))
        const oth = table.filter((t) => t.system === OTHER && t.kind === kind)
        const otherDiffs = oth.flatMap((o) => {
          const e = eng.find((x) => x.cycle === o.cycle && x.row === o.row)
          const x = spanOf(o, a, b)
          const y = e && spanOf(e, a, b)
          return x === undefined || y === undefined ? [] : [x - y]
        })
        return {
          kind,
          stage: name,
          engine: med(eng),
          graphile: med(gra),
          'engine − graphile': fmt(median(diffs)),
          ...(otherCheckout ? { other: med(oth), 'other − engine': fmt(median(otherDiffs)) } : {}),
        }
      }),
    ),
  )
  if (otherCheckout) {
    console.log("the other engine's CPU less this one's (ms, medians paired by cycle and row)")
    console.table(
      KINDS.map((kind) => {
        const out: Record<string, string> = { kind }
        for (const k of CPU_KEYS) {
          const diffs = table
            .filter((t) => t.system === OTHER && t.kind === kind && t.cpu)
            .flatMap((o) => {
              const e = table.find(
                (x) => x.system === ENGINE && x.cycle === o.cycle && x.row === o.row && x.cpu,
              )
              return e ? [o.cpu![k] - e.cpu![k]] : []
            })
          out[k] = fmt(median(diffs))
        }
        return out
      }),
    )
  }
  console.log(
    "the claims' pg_stat_statements figures (the engine's notified claim; graphile-worker's get_job, whose calls include its empty polls every 2 s, which write nothing): execution time per call; WAL records, full-page images and bytes per row, the commit record aside",
  )
  console.table(
    [...statsByKind].map(([key, t]) => {
      const n = cycles * (key.endsWith('warm') ? warmRows : rows)
      return {
        'database, rows': key,
        calls: t.calls,
        'exec ms': fmt(t.ms / t.calls),
        'WAL records': fmt(t.records / n),
        FPI: fmt(t.fpi / n),
        'WAL bytes': Math.round(t.bytes / n),
      }
    }),
  )
  if (process.env.STAGES_ROWS)
    console.table(
      table.map((t) => ({
        ...t,
        stages: undefined,
        ...Object.fromEntries(Object.entries(t.stages).map(([k, v]) => [k, fmt(v)])),
      })),
    )
  console.log(`after: ${loadAverage()}`)
} finally {
  for (const s of systems) await s.sys.dispose?.()
  for (const p of probes) await p.close()
  await cluster.stop()
}
