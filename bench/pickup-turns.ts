// `bun run bench/pickup-turns.ts [rounds] [seconds] [before.sql] [unflushed]`: the engine's pickups against graphile-worker's, and against itself with its claim as a former migration left it.
//
// Pickup windows as the suite runs them (bench/latency.ts: 50 rows/s, one autocommit insert each,
// concurrency 10, commit acknowledged → send start), each system in a process of its own, the
// systems taking turns window by window in a rotating order, on one cluster. With `before.sql`
// (e.g. sql/0006_claim_by_priority.sql) a second engine runs on a database migrated to this
// checkout and then given that file again: the same code against the functions as they were, so a
// migration that replaces a hot-path function is measured end to end in one run. Reported: pooled
// percentiles, each round's p50, and the median over rounds of each round's p50 difference to
// graphile-worker's and to the first engine's. `unflushed` as a fourth argument: every database
// commits without waiting for its WAL flush (inserts and claims alike), which takes the disk's
// flush, the same for every system and the noisiest part of a pickup on a shared machine, out of it.
// PICKUP_ENGINE_FROM=<another checkout>: one more engine, that checkout's client code (its
// bench/systems/host.ts and src/) on a database migrated by this one, so a change to the engine's
// client side is measured against the code before it in one run (round 28).
// PICKUP_HOPS=1: every pg client of the systems' processes traced (bench/systems/pg-trace.ts), and
// each system's pickup taken apart by hop (bench/pickup-stages.ts), medians over every row picked
// up: the notification's delivery (acknowledged commit → its arrival in the process: may be
// negative, the NOTIFY going out at the commit, before its acknowledgement), the wake (→ the claim
// called), the claim's round trip (→ answered), the hand-off (→ the handler's start). The trace
// costs each statement two clock reads and an array push, the same for every system.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { type LatencyWindow, latencyWindow, poolWindows } from './latency.ts'
import { median } from './percentiles.ts'
import { type PickupMarks, type PickupStage, pickupStages } from './pickup-stages.ts'
import { systemByKey } from './systems/by-key.ts'
import { hostedSystem, placedSystem } from './systems/hosted.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

const HOST_SCRIPT = 'bench/systems/host.ts'

const rounds = Number(process.argv[2] ?? 6)
const seconds = Number(process.argv[3] ?? 3)
const beforeFile = process.argv[4] || undefined
const unflushed = process.argv[5] === 'unflushed'
const otherCheckout = process.env.PICKUP_ENGINE_FROM || undefined
const hops = process.env.PICKUP_HOPS === '1'
if (hops) process.env.BENCH_PG_TRACE = '1'
// How each system's pickup shows in its trace (as bench/idle-stages.ts reads them).
const MARKS: Record<string, PickupMarks> = {
  graphile_batched: { channel: 'jobs:insert', claim: /^with j_raw as/ },
  outbox_engine: { channel: 'mailer_outbox', claim: /^outbox_claim/ },
}
const HOPS: [string, PickupStage, PickupStage | null][] = [
  ['notify delivered', 'notified', null],
  ['wake → claim', 'claim called', 'notified'],
  ['claim trip', 'claim answered', 'claim called'],
  ['hand-off', 'started', 'claim answered'],
]
const hopsOf = new Map<string, Record<string, number[]>>()

// The systems' processes with the release image's environment (its allocator setting), as in the suite's run.
await inImageEnv()
const cluster = await startBenchCluster()
const probes: Probe[] = []
const systems: { label: string; sys: BenchSystem; marks: PickupMarks }[] = []
async function place(
  label: string,
  key: string,
  database: string,
  after?: string,
  checkout?: string,
) {
  await cluster.createDatabase(database)
  if (unflushed)
    await cluster.admin.query(`alter database ${database} set synchronous_commit = off`)
  const probe = await openProbe(cluster.probeUrl(database))
  probes.push(probe)
  const url = cluster.url(database)
  const sys = checkout
    ? hostedSystem(key, url, await systemByKey(key, url, probe), join(checkout, HOST_SCRIPT))
    : await placedSystem(key, url, probe)
  await sys.prepare()
  if (after) await probe.query(after)
  systems.push({ label, sys, marks: MARKS[key]! })
}
try {
  await place('graphile-worker (batched)', 'graphile_batched', 'graphile_batched')
  await place('outbox-mailer engine', 'outbox_engine', 'outbox_engine')
  if (beforeFile) {
    await place(
      `outbox-mailer engine, ${beforeFile} applied again`,
      'outbox_engine',
      'outbox_engine_before',
      await readFile(beforeFile, 'utf8'),
    )
  }
  if (otherCheckout) {
    await place(
      `outbox-mailer engine of ${otherCheckout}`,
      'outbox_engine',
      'outbox_engine_other',
      undefined,
      otherCheckout,
    )
  }
  const windows = new Map<string, LatencyWindow[]>(systems.map((s) => [s.label, []]))
  for (let r = 0; r < rounds; r++) {
    for (const s of rotated(systems, r)) {
      if (hops) await s.sys.clientTrace?.()
      const w = await latencyWindow(s.sys, { perSecond: 50, seconds, concurrency: 10 })
      windows.get(s.label)!.push(w)
      if (hops) {
        const trace = (await s.sys.clientTrace?.()) ?? []
        const rec = hopsOf.get(s.label) ?? {}
        for (const row of w.rows ?? []) {
          const { stages } = pickupStages(s.marks, trace, row)
          for (const [name, to, from] of HOPS) {
            const end = stages[to]
            const begin = from === null ? 0 : stages[from]
            if (end !== undefined && begin !== undefined)
              rec[name] = [...(rec[name] ?? []), end - begin]
          }
        }
        hopsOf.set(s.label, rec)
      }
    }
  }
  const fmt = (x: number | null) => (x === null ? '>5000' : x.toFixed(2))
  const pooled = new Map([...windows].map(([label, w]) => [label, poolWindows(w)]))
  const medianDiff = (ours: (number | null)[], to: (number | null)[]) =>
    median(ours.map((x, i) => (x === null || to[i] === null ? Number.NaN : x - to[i]!))).toFixed(3)
  const theirs = pooled.get('graphile-worker (batched)')!.roundP50s
  const engine = pooled.get('outbox-mailer engine')!.roundP50s
  console.log(
    `${rounds} rounds of ${seconds} s at 50 rows/s per system, the systems taking turns (order rotated each round)${unflushed ? ', commits not waiting for their flush' : ''}`,
  )
  console.table(
    [...pooled].map(([label, p]) => {
      return {
        system: label,
        samples: p.samples,
        missing: p.missing,
        'p50 / p95 / p99 / max ms': [p.p50, p.p95, p.p99, p.max].map(fmt).join(' / '),
        'round p50s ms': p.roundP50s.map(fmt).join(' '),
        '− graphile-worker ms': medianDiff(p.roundP50s, theirs),
        '− engine ms': medianDiff(p.roundP50s, engine),
      }
    }),
  )
  if (hops) {
    console.log('pickup hops, medians over the rows picked up (ms; rows counted)')
    console.table(
      [...hopsOf].map(([label, rec]) =>
        Object.fromEntries([
          ['system', label],
          ...HOPS.map(([name]) => [
            name,
            rec[name] ? `${median(rec[name]).toFixed(3)} (${rec[name].length})` : '–',
          ]),
        ]),
      ),
    )
  }
} finally {
  for (const s of systems) await s.sys.dispose?.()
  for (const p of probes) await p.close()
  await cluster.stop()
}
