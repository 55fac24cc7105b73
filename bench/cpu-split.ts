// `bun run bench/cpu-split.ts [systems] [reps] [rows]`: where both cores' time goes during drains, by process kind and Postgres function (Linux `perf`).
//
// A drain on this machine is bound by its two cores, so a system's rate follows what a row costs
// the whole machine. bench/run.ts reads CPU from /proc per process; this samples every CPU with
// `perf record -a` through the same drains (bench/drain.ts, the systems taking turns, concurrency
// 10 and 50) and splits the cores' time inside the drains' timed spans into: Postgres in user space
// and in the kernel (WAL writes, fsync, sockets), the client's main thread (the system's own
// process, bench/systems/hosted.ts) and its other threads (JIT, garbage collector, allocator), idle, and
// anything else. Then the Postgres functions that take the most time, per row, side by side.
// Needs `perf` and permission to sample every CPU (root, or kernel.perf_event_paranoid <= 0).

import { availableParallelism } from 'node:os'
import { drainRun } from './drain.ts'
import { inImageEnv } from './image-env.ts'
import { median } from './percentiles.ts'
import { perfBinary, type Sample, sampleCpus } from './perf-samples.ts'
import { withPlacedSystems } from './placed-systems.ts'
import { checkSystemKeys } from './systems/by-key.ts'
import { OWN_PROCESSES } from './systems/hosted.ts'
import { rotated } from './turns.ts'

const FREQ_HZ = 999
const CONCURRENCIES = [10, 50]
const CAP_MS = 60_000
const TOP_FUNCTIONS = 25

await inImageEnv()
const keys = (process.argv[2] ?? 'ceiling,graphile_batched,outbox_engine').split(',')
checkSystemKeys(keys)
await perfBinary()
const reps = Number(process.argv[3] ?? 3)
const rows = Number(process.argv[4] ?? 20_000)

const KINDS = [
  'postgres user',
  'postgres kernel',
  'client main thread',
  'client other threads',
  'idle',
  'other',
] as const
type Kind = (typeof KINDS)[number]

// Where the systems' client sides run: each in a process of its own (bench/systems/hosted.ts), or
// this one (BENCH_SHARED_PROCESS=1). With their own, this process's samples (the probe) are 'other'.
const clientPids = new Set<number>(OWN_PROCESSES ? [] : [process.pid])

function kindOf(s: Sample): Kind {
  if (clientPids.has(s.pid)) return s.tid === s.pid ? 'client main thread' : 'client other threads'
  if (s.comm === 'postgres') return s.kernel ? 'postgres kernel' : 'postgres user'
  if (s.pid === 0) return 'idle'
  return 'other'
}

interface Drain {
  key: string
  concurrency: number
  rows: number
  rowsPerSecond: number
  fromS: number
  toS: number
}

const drains: Drain[] = []
await withPlacedSystems(keys, async (cluster, systems) => {
  const { samples, unparsed } = await sampleCpus(FREQ_HZ, async () => {
    // Warm-up drains (unmeasured, outside every span) also give perf time to start sampling.
    for (const sys of systems) await drainRun(cluster, sys, rows, CONCURRENCIES[0]!, CAP_MS)
    for (let rep = 0; rep < reps; rep++) {
      for (const c of CONCURRENCIES) {
        // The order rotates from rep to rep (bench/turns.ts).
        for (const sys of rotated(systems, rep)) {
          const r = await drainRun(cluster, sys, rows, c, CAP_MS)
          const pid = sys.clientPid?.()
          if (pid) clientPids.add(pid)
          drains.push({
            key: sys.database,
            concurrency: c,
            rows: r.rows,
            rowsPerSecond: r.rowsPerSecond,
            fromS: r.span.fromMs / 1000,
            toS: r.span.toMs / 1000,
          })
          console.error(`${sys.name} c${c}: ${Math.round(r.rowsPerSecond)} rows/s`)
        }
      }
    }
  })
  report(samples, unparsed)
})

function report(samples: Sample[], unparsed: number) {
  const spans = [...drains].sort((a, b) => a.fromS - b.fromS)
  const drainAt = (at: number): Drain | undefined => {
    let lo = 0
    let hi = spans.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const d = spans[mid]!
      if (at < d.fromS) hi = mid - 1
      else if (at > d.toS) lo = mid + 1
      else return d
    }
    return undefined
  }
  const byKind = new Map<string, Map<Kind, number>>()
  const byFunction = new Map<string, Map<string, number>>()
  for (const s of samples) {
    const d = drainAt(s.at)
    if (!d) continue
    const group = `${d.key} c${d.concurrency}`
    const kinds = byKind.get(group) ?? new Map<Kind, number>()
    const kind = kindOf(s)
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    byKind.set(group, kinds)
    if (kind === 'postgres user' || kind === 'postgres kernel') {
      const fns = byFunction.get(d.key) ?? new Map<string, number>()
      const name = `${s.kernel ? '[k] ' : ''}${s.sym}`
      fns.set(name, (fns.get(name) ?? 0) + 1)
      byFunction.set(d.key, fns)
    }
  }
  const usPerSample = 1e6 / FREQ_HZ
  const rowsOf = (pred: (d: Drain) => boolean) =>
    drains.filter(pred).reduce((n, d) => n + d.rows, 0)
  const fmt = (n: number) => n.toFixed(1)

  console.log(
    `\nCPU time per row during the drains (µs; ${availableParallelism()} cores; perf at ${FREQ_HZ} Hz; ${reps} drains of ${rows} rows each)\n`,
  )
  console.log(`| system | rows/s (median) | ${KINDS.join(' | ')} | sum | cores × wall |`)
  console.log(`| --- | --- | ${KINDS.map(() => '---').join(' | ')} | --- | --- |`)
  for (const key of keys) {
    for (const c of CONCURRENCIES) {
      const mine = drains.filter((d) => d.key === key && d.concurrency === c)
      const n = rowsOf((d) => d.key === key && d.concurrency === c)
      const kinds = byKind.get(`${key} c${c}`) ?? new Map<Kind, number>()
      const cells = KINDS.map((k) => ((kinds.get(k) ?? 0) * usPerSample) / n)
      const wall =
        (mine.reduce((t, d) => t + (d.toS - d.fromS), 0) * 1e6 * availableParallelism()) / n
      const rate = median(mine.map((d) => d.rowsPerSecond))
      console.log(
        `| ${key} c${c} | ${Math.round(rate).toLocaleString('en-US')} | ${cells.map(fmt).join(' | ')} | ${fmt(cells.reduce((a, b) => a + b, 0))} | ${fmt(wall)} |`,
      )
    }
  }

  console.log(
    '\nsum: the samples perf took inside the drains; cores × wall: the time the drains held both cores (the difference was not sampled).',
  )

  const total = new Map<string, number>()
  for (const fns of byFunction.values())
    for (const [f, n] of fns) total.set(f, (total.get(f) ?? 0) + n)
  const top = [...total.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_FUNCTIONS)
  console.log(`\nPostgres functions, µs per row (both concurrencies; [k] = kernel)\n`)
  console.log(`| function | ${keys.join(' | ')} |`)
  console.log(`| --- | ${keys.map(() => '---').join(' | ')} |`)
  for (const [f] of top) {
    const cells = keys.map((key) => {
      const n = rowsOf((d) => d.key === key)
      return fmt(((byFunction.get(key)?.get(f) ?? 0) * usPerSample) / n)
    })
    console.log(`| ${f} | ${cells.join(' | ')} |`)
  }
  if (unparsed > 0)
    console.log(`\n${unparsed} lines of perf script output not understood (skipped)`)
}
