// The results: one table for stdout and BENCHMARKS.md, and the JSON kept in bench/results/latest.json.

import { AUTOVACUUM_WAIT_MS, type DrainRun } from './drain.ts'
import type { IdleResult } from './idle.ts'
import { type LatencyResult, PICKUP_WAIT_MS } from './latency.ts'
import { median } from './percentiles.ts'
import type { SporadicResult } from './sporadic.ts'

export interface SystemResult {
  name: string
  drain: Record<string, DrainRun[]>
  latency: LatencyResult | null
  /** Absent in results written before it was measured. */
  sporadic?: SporadicResult | null
  idle: IdleResult | null
}

export interface Results {
  startedAt: string
  durationSeconds: number
  machine: { cpus: number; model: string; memoryGiB: number; kernel: string; bun: string }
  /** The release image's ENV names with the values this run's processes had (the binary's too). */
  imageEnv: Record<string, string>
  postgres: { version: string; settings: Record<string, string> }
  parameters: Record<string, unknown>
  binary: {
    transport: string
    /** Starts on its own (drains, pickup windows). */
    readyMs: number[]
    readyMsMedian: number
    /** Starts at the same moment as every other system (pickup after idle, idle). */
    readyMsAlongside?: number[]
    idleRssMiB: number | null
  }
  systems: SystemResult[]
}

/** Median of `f` over a system's drains at one concurrency; NaN when there are none. */
export const med = (runs: DrainRun[] | undefined, f: (r: DrainRun) => number) =>
  runs && runs.length > 0 ? median(runs.map(f)) : Number.NaN

/** A figure for the tables: grouped thousands, `digits` decimals, – when not a number. */
export const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '–'

/**
 * Two subjects measured round by round in turns (A/B, A/A): the median of the rounds' ratios a / b
 * and their 25th–75th percentiles, `1.030 (0.94–1.09)`.
 */
export function ratioSpread(a: readonly number[], b: readonly number[]): string {
  const r = a.map((x, i) => x / b[i]!).sort((x, y) => x - y)
  const q = (p: number) => r[Math.min(r.length - 1, Math.floor(p * r.length))]!
  return `${fmt(median(r), 3)} (${fmt(q(0.25), 2)}–${fmt(q(0.75), 2)})`
}

/**
 * Statements per row: three significant digits below one, since a drain's statements are few per
 * row (a target compares 0.00410 with 0.00405, which three decimals showed both as 0.004).
 */
export const fmtPerRow = (n: number) => (Number.isFinite(n) && n < 1 ? n.toPrecision(3) : fmt(n, 3))

/** A pickup figure; null (among rows never picked up) as more than the wait for them. */
export const fmtPickup = (ms: number | null) =>
  ms === null ? `>${fmt(PICKUP_WAIT_MS)}` : fmt(ms, 1)

/** The rows of `total` never picked up, if any, for a pickup cell. */
const notPickedUp = (missing: number, total: number) =>
  missing > 0 ? ` (${fmt(missing)} of ${fmt(total)} not picked up)` : ''

const capped = (runs: DrainRun[] | undefined) => (runs?.some((r) => !r.complete) ? '*' : '')

export function table(r: Results): string {
  const head = [
    'system',
    'drain c10 rows/s',
    'drain c50 rows/s',
    'pickup p50 / p95 / p99 / max ms',
    'pickup after idle p50 / max ms',
    'idle stmt/s',
    'idle xact/s',
    'idle conns',
    'stmts/row c10 · c50',
    'WAL B/row c10 · c50',
    'enqueue WAL B/row',
    'PG CPU µs/row c10 · c50',
    'client CPU µs/row c10 · c50',
  ]
  const rows = r.systems.map((s) => {
    const c10 = s.drain.c10
    const c50 = s.drain.c50
    const l = s.latency
    return [
      s.name,
      fmt(med(c10, (x) => x.rowsPerSecond)) + capped(c10),
      fmt(med(c50, (x) => x.rowsPerSecond)) + capped(c50),
      l
        ? `${[l.p50, l.p95, l.p99, l.max].map(fmtPickup).join(' / ')}${notPickedUp(l.missing, l.samples + l.missing)}`
        : '–',
      s.sporadic
        ? `${fmtPickup(s.sporadic.p50)} / ${fmtPickup(s.sporadic.max)}${notPickedUp(s.sporadic.missing, s.sporadic.latenciesMs.length + s.sporadic.missing)}`
        : '–',
      s.idle ? fmt(s.idle.statementsPerSecond, 2) : '–',
      s.idle ? fmt(s.idle.transactionsPerSecond, 2) : '–',
      !s.idle
        ? '–'
        : s.idle.connectionsMin === s.idle.connections
          ? fmt(s.idle.connections)
          : `${fmt(s.idle.connectionsMin)}–${fmt(s.idle.connections)}`,
      `${fmtPerRow(med(c10, (x) => x.statementsPerRow))} · ${fmtPerRow(med(c50, (x) => x.statementsPerRow))}`,
      `${fmt(med(c10, (x) => x.walBytesPerRow))} · ${fmt(med(c50, (x) => x.walBytesPerRow))}`,
      fmt(med([...(c10 ?? []), ...(c50 ?? [])], (x) => x.enqueueWalBytesPerRow)),
      `${fmt(med(c10, (x) => x.cpuMicrosPerRow))} · ${fmt(med(c50, (x) => x.cpuMicrosPerRow))}`,
      // Only meaningful in process: the binary's client side runs in its own process.
      s.drain.c10?.[0] && !s.name.includes('binary')
        ? `${fmt(med(c10, (x) => x.clientCpuMicrosPerRow))} · ${fmt(med(c50, (x) => x.clientCpuMicrosPerRow))}`
        : '–',
    ]
  })
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n')
}

export function footnotes(r: Results): string {
  const alongside = r.binary.readyMsAlongside ?? []
  return [
    `Drain figures are medians of ${r.parameters.repeats} runs of ${r.parameters.rows} pre-inserted rows; * = a run hit the ${r.parameters.capSeconds} s cap (rate over the rows done)${Number(r.parameters.drainsCut ?? 0) > 0 ? `, or a shorter one: ${r.parameters.drainsCut} of ${r.parameters.drains} drains had their cap cut, the run being projected more than 20 s past its ${r.parameters.budgetSeconds} s budget` : ''}.${Number(r.parameters.drainsShortWait ?? 0) > 0 ? ` ${r.parameters.drainsShortWait} of ${r.parameters.drains} drains waited at most 1 s for autovacuum to finish instead of ${AUTOVACUUM_WAIT_MS / 1000}, the run being projected past its budget.` : ''} ${Number(r.parameters.warmupRows ?? 0) > 0 ? `Before them, one unmeasured warm-up drain per system (${r.parameters.warmupRows} rows at concurrency 10, at most ${r.parameters.warmupCapSeconds} s).` : 'No warm-up drain.'}`,
    `WAL B/row: while draining (from the insert's commit to the last row done); enqueue WAL B/row: the insert itself. Client CPU: ${r.parameters.ownProcesses === true ? "the process each system's client side runs in, one Bun process per system (bench/systems/hosted.ts)" : "the benchmark's own process, where every system but the binary runs its client side"} (– for the binary, a process of its own, not measured).`,
    `Pickup: ${r.parameters.latencyPerSecond} rows/s, one autocommit insert each, concurrency 10, in ${r.parameters.latencyRounds} rounds of ${r.parameters.latencySeconds} s per system (the systems take turns each round); percentiles pooled over the rounds, a row not picked up within ${fmt(PICKUP_WAIT_MS / 1000)} s of a window's last insert counted as slower than every row that was (">${fmt(PICKUP_WAIT_MS)}" when a percentile falls among such rows). p50 per round: ${r.systems
      .filter((s) => s.latency)
      .map((s) => `${s.name} ${s.latency!.roundP50s.map(fmtPickup).join(' / ')}`)
      .join(
        '; ',
      )} ms. Slowest pickups (ms, with round.row, row 1 being a window's first after the system's start, and the longest event-loop stall inside the pickup of the process the system's client runs in, if any): ${r.systems
      .filter((s) => s.latency?.slowest)
      .map(
        (s) =>
          `${s.name} ${s.latency!.slowest.map((x) => `${fmt(x.ms, 1)} (${x.round}.${x.row}${x.stallMs ? `, stall ${fmt(x.stallMs, 0)}` : ''})`).join(', ')}`,
      )
      .join('; ')}.`,
    `Pickup after idle: all systems at once, one row per system every ${r.parameters.sporadicGapSeconds} s (pools close idle connections after 10 s), the systems' rows spread across each gap, ${r.parameters.sporadicRounds} rows each: ${r.systems
      .filter((s) => s.sporadic)
      .map((s) => `${s.name} ${sporadicRows(s.sporadic!)}`)
      .join(
        '; ',
      )} ms; "stall": the longest event-loop stall inside that pickup of the process the system's client runs in, in ms (${r.parameters.ownProcesses === true ? 'its own process: its own work' : "the benchmark's process: mostly another system's work"}; bench/stalls.ts).`,
    `Idle: ${r.parameters.idleSeconds} s, all systems at once, each on its own database, after an ${r.parameters.idleWarmupSeconds} s warm-up (longer than the pools' 10 s idle timeout, so connections opened for the start-up have closed); connections = client backends held, sampled every second through the window (fewest–most when they differ). The binary idles as deployed: /readyz and /metrics fetched every 15 s (fly.toml's check, Fly's scrape). The window lies ${r.parameters.idleWarmupSeconds}–${Number(r.parameters.idleWarmupSeconds) + Number(r.parameters.idleSeconds)} s after the start in every run, so work done less often falls in it or not by its phase, the same way each time: ours beat the worker registry once a minute (at the start, then 60 s later) and the binary recounts its finished rows and re-checks its schema every 5 minutes, none of it inside; bench/idle-span.ts counts window after window over minutes.`,
    `Compiled binary (${r.binary.transport}): start-to-ready median ${fmt(r.binary.readyMsMedian)} ms ` +
      `(spawn → /readyz 200, ${r.binary.readyMs.length} starts on its own: ${r.binary.readyMs.map((x) => fmt(x)).join(', ')} ms` +
      `${alongside.length > 0 ? `; not counted, ${alongside.length} more at the same moment as the other systems' start-ups: ${alongside.map((x) => fmt(x)).join(', ')} ms` : ''}); ` +
      `idle RSS ${fmt(r.binary.idleRssMiB ?? Number.NaN, 1)} MiB.`,
  ].join('\n')
}

/** One system's pickups after idle, in order, each with the benchmark's own stall inside it if any. */
export function sporadicRows(r: SporadicResult): string {
  return r.latenciesMs
    .map((x, i) => {
      const stall = r.stalledMs?.[i] ?? 0
      return stall > 0 ? `${fmt(x, 1)} (stall ${fmt(stall, 0)})` : fmt(x, 1)
    })
    .concat(r.missing > 0 ? [`${fmt(r.missing)} not picked up`] : [])
    .join(' / ')
}
