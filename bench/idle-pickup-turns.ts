// `bun run bench/idle-pickup-turns.ts [cycles] [rows] [gap seconds]`: the engine's pickups after an idle spell against graphile-worker's, and against another checkout's engine.
//
// The suite's "pickup after a quiet spell" (bench/sporadic.ts) repeated: each cycle starts every
// system at once (each in a process of its own, on its own database of one cluster), lets them idle
// a full gap (11 s, longer than the pools' 10 s idle timeout), commits `rows` rows per system one
// gap apart, the systems' rows spread across each gap, and stops them; the systems' order rotates
// from cycle to cycle. Row 1 of a cycle is the first after a start (a new LISTEN session, a new
// pool); the later ones follow an idle spell on a session that has run the claim before. Reported
// apart: their medians, and the medians over cycles of each row's difference to graphile-worker's
// and to the first engine's. Each process is warmed first by one unmeasured pickup window (as the
// suite's earlier phases warm it). PICKUP_ENGINE_FROM=<another checkout>: one more engine, that
// checkout's client code (its bench/systems/host.ts and src/) on a database migrated by this one,
// so a change to the engine's client side is measured against the code before it in one run.
// PICKUP_ENGINE_FROM=<this checkout> is an A/A: how far two identical engines' slots differ (round
// 31, a loaded machine: up to 1.9 ms paired on row 1, 0.5 on the later rows).
// PICKUP_SYSTEM=outbox_binary: the compiled binary → Graph fake in the engine's place (row 1: the
// binary's first pickup after its start); PICKUP_BINARY_FROM=<another build>: one more binary, that
// build (round 32: a build of origin/main against this checkout's).
import { join } from 'node:path'
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { latencyWindow } from './latency.ts'
import { median } from './percentiles.ts'
import { sporadicRun } from './sporadic.ts'
import { systemByKey } from './systems/by-key.ts'
import { hostedSystem, placedSystem } from './systems/hosted.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

const cycles = Number(process.argv[2] ?? 6)
const rows = Number(process.argv[3] ?? 3)
const gapSeconds = Number(process.argv[4] ?? 11)
const otherCheckout = process.env.PICKUP_ENGINE_FROM || undefined
const engineKey = process.env.PICKUP_SYSTEM || 'outbox_engine'
const otherBinary = process.env.PICKUP_BINARY_FROM || undefined

// The systems' processes with the release image's environment (its allocator setting), as in the suite's run.
await inImageEnv()
const cluster = await startBenchCluster()
const probes: Probe[] = []
const systems: { label: string; sys: BenchSystem }[] = []
async function place(
  label: string,
  key: string,
  database: string,
  checkout?: string,
  binary?: string,
) {
  await cluster.createDatabase(database)
  const probe = await openProbe(cluster.probeUrl(database))
  probes.push(probe)
  const url = cluster.url(database)
  const sys = binary
    ? await systemByKey(key, url, probe, binary)
    : checkout
      ? hostedSystem(
          key,
          url,
          await systemByKey(key, url, probe),
          join(checkout, 'bench/systems/host.ts'),
        )
      : await placedSystem(key, url, probe)
  await sys.prepare()
  systems.push({ label, sys: { ...sys, name: label } })
}
const GRAPHILE = 'graphile-worker (batched)'
const ENGINE = engineKey === 'outbox_engine' ? 'outbox-mailer engine' : engineKey
try {
  await place(GRAPHILE, 'graphile_batched', 'graphile_batched')
  await place(ENGINE, engineKey, engineKey)
  if (otherCheckout)
    await place(`${ENGINE} of ${otherCheckout}`, engineKey, `${engineKey}_other`, otherCheckout)
  if (otherBinary)
    await place(
      `${ENGINE} of ${otherBinary}`,
      engineKey,
      `${engineKey}_other`,
      undefined,
      otherBinary,
    )
  for (const s of systems)
    await latencyWindow(s.sys, { perSecond: 50, seconds: 1, concurrency: 10 })
  // Per system, per cycle: the latencies of its rows in order (null: not picked up).
  const byCycle = new Map<string, (number | null)[][]>(systems.map((s) => [s.label, []]))
  for (let c = 0; c < cycles; c++) {
    const order = rotated(systems, c)
    const run = await sporadicRun(
      order.map((s) => s.sys),
      { rounds: rows, gapMs: gapSeconds * 1000, concurrency: 10 },
    )
    for (const s of systems) {
      const r = run.get(s.label)!
      // sporadicRun lists the rows picked up in commit order; a missing row is left out.
      const got: (number | null)[] = [...r.latenciesMs]
      while (got.length < rows) got.push(null)
      byCycle.get(s.label)!.push(got)
    }
    console.log(
      `cycle ${c + 1}/${cycles}: ${systems
        .map(
          (s) =>
            `${s.label} ${byCycle
              .get(s.label)!
              .at(-1)!
              .map((x) => (x === null ? '–' : x.toFixed(1)))
              .join(' / ')}`,
        )
        .join('; ')}`,
    )
  }
  const fmt = (x: number) => (Number.isNaN(x) ? '–' : x.toFixed(2))
  const pick = (label: string, first: boolean) =>
    byCycle.get(label)!.flatMap((cycle) => (first ? cycle.slice(0, 1) : cycle.slice(1)))
  const present = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null)
  const diff = (label: string, to: string, first: boolean) => {
    const ours = pick(label, first)
    const theirs = pick(to, first)
    return fmt(
      median(ours.flatMap((x, i) => (x === null || theirs[i] === null ? [] : [x - theirs[i]!]))),
    )
  }
  console.log(
    `${cycles} cycles of ${rows} rows ${gapSeconds} s apart per system, the systems started together each cycle (order rotated)`,
  )
  console.table(
    systems.map(({ label }) => ({
      system: label,
      'row 1 median ms': fmt(median(present(pick(label, true)))),
      'rows 2+ median ms': fmt(median(present(pick(label, false)))),
      'row 1 − graphile-worker': diff(label, GRAPHILE, true),
      'rows 2+ − graphile-worker': diff(label, GRAPHILE, false),
      'row 1 − engine': diff(label, ENGINE, true),
      'rows 2+ − engine': diff(label, ENGINE, false),
      missing: pick(label, true)
        .concat(pick(label, false))
        .filter((x) => x === null).length,
    })),
  )
} finally {
  for (const s of systems) await s.sys.dispose?.()
  for (const p of probes) await p.close()
  await cluster.stop()
}
