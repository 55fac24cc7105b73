// `bun run bench`: every system on one embedded Postgres, in one run; prints the table, writes the results.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { systemClock } from '../src/clock.ts'
import { compiledBinary } from '../test/support/binary.ts'
import { drainBudget } from './budget.ts'
import { startBenchCluster } from './cluster.ts'
import { AUTOVACUUM_WAIT_MS, type DrainRun, drainRun } from './drain.ts'
import { idleRun, rssMiB } from './idle.ts'
import { imageEnvInEffect, inImageEnv } from './image-env.ts'
import { type LatencyWindow, latencyWindow, poolWindows } from './latency.ts'
import { median } from './percentiles.ts'
import {
  fmtPickup,
  footnotes,
  type Results,
  type SystemResult,
  sporadicRows,
  table,
} from './report.ts'
import { sporadicRun } from './sporadic.ts'
import { SYSTEM_KEYS } from './systems/by-key.ts'
import { OWN_PROCESSES, placedSystem } from './systems/hosted.ts'
import { outboxBinarySystem } from './systems/outbox-binary.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

// The in-process systems (ours and the peers alike) run with the release image's allocator settings.
await inImageEnv()
const env = process.env
const P = {
  rows: Number(env.BENCH_ROWS ?? 20_000),
  repeats: Number(env.BENCH_REPEATS ?? 3),
  concurrencies: [10, 50],
  // A drain stops at the cap (its rate is then over the rows done). 10 s since round 19: with 15 s
  // the suite took 560-574 s in a slow hour, the drains of the slow systems mostly at the cap.
  capSeconds: Number(env.BENCH_CAP_SECONDS ?? 10),
  // The run's target length, inside the issue's 10 minutes: when the drains would leave too little
  // for what follows them, the drains left wait less for autovacuum, and past 20 s more than that
  // (past the 10 minutes) get shorter caps too (bench/budget.ts).
  budgetSeconds: Number(env.BENCH_BUDGET_SECONDS ?? 580),
  latencyPerSecond: 50,
  latencySeconds: Number(env.BENCH_LATENCY_SECONDS ?? 3),
  latencyRounds: Number(env.BENCH_LATENCY_ROUNDS ?? 3),
  idleSeconds: Number(env.BENCH_IDLE_SECONDS ?? 30),
  // Past the pools' 10 s idle timeout (ours and the peers'): connections opened for the start-up
  // have gone back, and the window holds what an idle process keeps.
  idleWarmupSeconds: Number(env.BENCH_IDLE_WARMUP_SECONDS ?? 11),
  // One unmeasured drain per system first (0 = none): JIT-compiled client code and warm buffers for
  // every system alike, as in a worker that has been running for a while.
  // Pickup after a quiet spell: rows this many seconds apart per system (pools drop idle
  // connections after 10 s), this many rows each; 0 rounds = none.
  sporadicRounds: Number(env.BENCH_SPORADIC_ROUNDS ?? 4),
  sporadicGapSeconds: Number(env.BENCH_SPORADIC_GAP_SECONDS ?? 11),
  warmupRows: Number(env.BENCH_WARMUP_ROWS ?? 20_000),
  warmupCapSeconds: Number(env.BENCH_WARMUP_CAP_SECONDS ?? 3),
  only: env.BENCH_ONLY?.split(',') ?? null,
  // Each in-process system's client side in a Bun process of its own (bench/systems/hosted.ts);
  // BENCH_SHARED_PROCESS=1 runs them all in this one, as before round 15.
  ownProcesses: OWN_PROCESSES,
}
// fly.toml's [[http_service.checks]] interval on /readyz, and Fly's Prometheus scrape interval.
const FLY_CHECK_SECONDS = 15
const say = (m: string) =>
  process.stderr.write(`[bench ${((performance.now() - T0) / 1000).toFixed(0)}s] ${m}\n`)
const T0 = performance.now()

const [bin, cluster] = await Promise.all([compiledBinary(), startBenchCluster()])
const probes: Probe[] = []
const systems: BenchSystem[] = []
let binary: ReturnType<typeof outboxBinarySystem> | null = null
try {
  for (const db of SYSTEM_KEYS) {
    if (P.only && !P.only.some((o) => db.includes(o))) continue
    await cluster.createDatabase(db)
    const probe = await openProbe(cluster.probeUrl(db))
    probes.push(probe)
    const url = cluster.url(db)
    // The binary is kept typed: its starts and process are read below.
    let s: BenchSystem
    if (db === 'outbox_binary') {
      binary = outboxBinarySystem(db, url, probe, bin, 'graph')
      s = binary
    } else s = await placedSystem(db, url, probe)
    await s.prepare()
    systems.push(s)
    say(`prepared ${s.name}`)
  }
  const results = new Map<string, SystemResult>(
    systems.map((s) => [
      s.name,
      { name: s.name, drain: {}, latency: null, sporadic: null, idle: null },
    ]),
  )
  // Start-to-ready of the binary's starts on its own, and of those made at the same moment as every
  // other system's (pickup after idle, idle), which share the two cores with six other start-ups.
  const readyMs: number[] = []
  const readyMsAlongside: number[] = []
  const noteReady = (s: BenchSystem) => {
    if (s === binary && binary.lastRun()) readyMs.push(binary.lastRun()!.readyMs)
  }
  const noteReadyAlongside = () => {
    const run = binary?.lastRun()
    if (run) readyMsAlongside.push(run.readyMs)
  }

  // After the drains: the pickup windows, the pickups after idle and the idle window, with each
  // system's starts and stops (about 2 s per window).
  const afterDrainsSeconds =
    P.latencyRounds * systems.length * (P.latencySeconds + 2) +
    (P.sporadicRounds > 0 ? P.sporadicRounds * P.sporadicGapSeconds + 10 : 0) +
    P.idleWarmupSeconds +
    P.idleSeconds +
    10
  const drainKey = (s: BenchSystem, c: number) => `${s.name} c${c}`
  const plan: string[] = []
  for (let rep = 1, turn = 0; rep <= P.repeats; rep++) {
    for (const c of P.concurrencies) {
      for (const s of rotated(systems, turn++)) plan.push(drainKey(s, c))
    }
  }
  const budget = drainBudget({
    plan,
    deadline: T0 + (P.budgetSeconds - afterDrainsSeconds) * 1000,
    capMs: P.capSeconds * 1000,
    quietMaxMs: AUTOVACUUM_WAIT_MS,
    minCapMs: 3_000,
    minQuietMs: 1_000,
    overheadMs: 2_000,
    waitSlackMs: 20_000,
  })
  // Interleaved so that noise on the shared machine spreads over every system alike, in an order
  // that rotates (bench/turns.ts).
  if (P.warmupRows > 0) {
    for (const s of systems) {
      const began = performance.now()
      const r = await drainRun(cluster, s, P.warmupRows, 10, P.warmupCapSeconds * 1000)
      // A warm-up that finished the drain's rows is the first estimate of the system's drains.
      if (r.complete && P.warmupRows === P.rows) {
        for (const c of P.concurrencies) budget.took(drainKey(s, c), performance.now() - began)
      }
      noteReady(s)
      say(`warm-up c10 ${s.name}: ${r.rowsPerSecond.toFixed(0)} rows/s (not counted)`)
    }
  }
  let turn = 0
  for (let rep = 1; rep <= P.repeats; rep++) {
    for (const c of P.concurrencies) {
      for (const s of rotated(systems, turn++)) {
        const allowed = budget.next(drainKey(s, c))
        const began = performance.now()
        const r: DrainRun = await drainRun(cluster, s, P.rows, c, allowed.capMs, allowed.quietMaxMs)
        budget.took(drainKey(s, c), performance.now() - began)
        noteReady(s)
        const key = `c${c}`
        const entry = results.get(s.name)!
        entry.drain[key] = [...(entry.drain[key] ?? []), r]
        say(
          `drain rep ${rep} c${c} ${s.name}: ${r.rowsPerSecond.toFixed(0)} rows/s${r.complete ? '' : ' (capped)'}` +
            `${allowed.cut ? ` (budget: cap ${(allowed.capMs / 1000).toFixed(1)} s)` : allowed.quietMaxMs < AUTOVACUUM_WAIT_MS ? ' (budget: short autovacuum wait)' : ''}, ` +
            `${r.statementsPerRow.toFixed(3)} stmt/row, ${r.walBytesPerRow.toFixed(0)} WAL B/row, ${r.cpuMicrosPerRow.toFixed(0)} µs CPU/row`,
        )
      }
    }
  }
  // Pickup in rounds, each system once per round: a slower or faster spell of the shared machine
  // then lands on every system, and each round compares them side by side.
  const windows = new Map<string, LatencyWindow[]>(systems.map((s) => [s.name, []]))
  for (let round = 1; round <= P.latencyRounds; round++) {
    for (const s of rotated(systems, round - 1)) {
      const w = await latencyWindow(s, {
        perSecond: P.latencyPerSecond,
        seconds: P.latencySeconds,
        concurrency: 10,
      })
      noteReady(s)
      windows.get(s.name)!.push(w)
      const one = poolWindows([w])
      say(
        `latency round ${round} ${s.name}: p50 ${fmtPickup(one.p50)} p99 ${fmtPickup(one.p99)} max ${fmtPickup(one.max)} ms (${one.missing} missing)`,
      )
    }
  }
  for (const [name, w] of windows) results.get(name)!.latency = poolWindows(w)
  if (P.sporadicRounds > 0) {
    const sporadic = await sporadicRun(systems, {
      rounds: P.sporadicRounds,
      gapMs: P.sporadicGapSeconds * 1000,
      concurrency: 10,
    })
    for (const [name, r] of sporadic) {
      results.get(name)!.sporadic = r
      say(
        `pickup after ${P.sporadicGapSeconds} s idle ${name}: ${sporadicRows(r)} ms (${r.missing} missing)`,
      )
    }
    noteReadyAlongside()
  }
  // The ceiling polls in a tight loop by design: it has no idle figure.
  let idleRss: number | null = null
  // The binary idles as deployed (fly.toml): Fly's check GETs /readyz every 15 s and its Prometheus
  // scrapes /metrics every 15 s. One scrape in the warm-up, so that the count of finished rows
  // (every 5 minutes, 4 statements) is not in the window.
  const binaryGet = (path: string) => {
    const port = binary?.lastRun()?.port
    return port
      ? fetch(`http://127.0.0.1:${port}${path}`)
          .then((r) => r.text())
          .catch(() => '')
      : Promise.resolve('')
  }
  const idle = await idleRun(
    cluster,
    systems.filter((s) => !s.name.includes('ceiling')),
    {
      seconds: P.idleSeconds,
      warmupSeconds: P.idleWarmupSeconds,
      concurrency: 10,
      duringWarmup: async () => {
        await binaryGet('/metrics')
      },
      whileMeasuring: async (window) => {
        while (!window.aborted) {
          // One after the other: Fly's check and its scrape are not in step.
          await binaryGet('/readyz')
          await binaryGet('/metrics')
          await systemClock.sleep(FLY_CHECK_SECONDS * 1000, window)
        }
      },
      duringIdle: async () => {
        const pid = binary?.lastRun()?.pid
        if (pid) idleRss = await rssMiB(pid)
      },
    },
  )
  for (const [name, r] of idle) {
    results.get(name)!.idle = r
    say(
      `idle ${name}: ${r.statementsPerSecond.toFixed(2)} stmt/s, ${r.transactionsPerSecond.toFixed(2)} xact/s, ${r.connections} conns`,
    )
  }
  noteReadyAlongside()

  const cpu = cpus()
  const out: Results = {
    startedAt: new Date(Date.now() - performance.now()).toISOString(),
    durationSeconds: (performance.now() - T0) / 1000,
    machine: {
      cpus: cpu.length,
      model: cpu[0]?.model ?? '?',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      bun: Bun.version,
    },
    imageEnv: await imageEnvInEffect(),
    postgres: { version: cluster.version, settings: cluster.settings },
    parameters: {
      ...P,
      drains: plan.length,
      drainsCut: budget.cuts(),
      drainsShortWait: budget.shortWaits(),
    },
    binary: {
      transport: 'graph (fake on loopback)',
      readyMs,
      readyMsMedian: median(readyMs),
      readyMsAlongside,
      idleRssMiB: idleRss,
    },
    systems: [...results.values()],
  }
  const text = `${table(out)}\n\n${footnotes(out)}`
  console.log(text)
  const dir = join(import.meta.dir, 'results')
  await mkdir(dir, { recursive: true })
  // Only a full run replaces the published results; a partial one is kept beside them (untracked).
  const full = !P.only && P.rows === 20_000 && P.repeats >= 3
  await writeFile(
    join(dir, full ? 'latest.json' : 'partial.json'),
    `${JSON.stringify(out, null, 2)}\n`,
  )
  if (full) await updateBenchmarksMd(text, out)
  say('done')
} finally {
  for (const s of systems) await s.dispose?.().catch(() => {})
  for (const p of probes) await p.close().catch(() => {})
  await cluster.stop()
}

/** Replaces the part of BENCHMARKS.md between the result markers. */
async function updateBenchmarksMd(text: string, r: Results) {
  const path = join(import.meta.dir, '..', 'BENCHMARKS.md')
  const doc = await readFile(path, 'utf8').catch(() => null)
  const begin = '<!-- bench:results:begin -->'
  const end = '<!-- bench:results:end -->'
  if (!doc?.includes(begin) || !doc.includes(end)) return
  const m = r.machine
  const runEnv = Object.entries(r.imageEnv)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ')
  const block = [
    begin,
    `Run ${r.startedAt} (${r.durationSeconds.toFixed(0)} s) on ${m.cpus} × ${m.model}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Bun ${m.bun}; every process with ${runEnv} (the variables the release image sets).`,
    `${r.postgres.version}; ${Object.entries(r.postgres.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}.`,
    '',
    text,
    end,
  ].join('\n')
  await writeFile(
    path,
    doc.slice(0, doc.indexOf(begin)) + block + doc.slice(doc.indexOf(end) + end.length),
  )
}
