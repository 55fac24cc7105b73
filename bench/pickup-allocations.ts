// `bun run bench/pickup-allocations.ts [samples] [systems]`: the heap cells one pickup allocates in each system's process, by type.
//
// Each system's client runs in a process of its own (as the suite hosts it), with Bun's GC timer
// off (BUN_GC_TIMER_DISABLE=1) so that no collection runs between two readings. After 200 warm
// pickups (50 rows/s), per sample: a full collection in that process, 200 ms, its cells by type
// (bun:jsc heapStats, no collection: cells allocated since the last one count until the next),
// one row committed, its send start, 100 ms for its settlement, the cells again. A control sample
// does the same without the row (what the readings and the idle process allocate); samples and
// controls alternate. Printed per system: the median cells per pickup less the control's, in all
// and by type, the largest first (round 34: notification → claim → send → settlement).
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { pickupRecorder } from './latency.ts'
import { median } from './percentiles.ts'
import { checkSystemKeys } from './systems/by-key.ts'
import { placedSystem } from './systems/hosted.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'

const samples = Number(process.argv[2] ?? 20)
const keys = (process.argv[3] ?? 'outbox_engine,graphile_batched').split(',')
checkSystemKeys(keys)
const WARM_ROWS = 200
const SETTLE_MS = 100

await inImageEnv()
// Read by the hosts at their start (hosted.ts passes this environment on).
process.env.BUN_GC_TIMER_DISABLE = '1'
const cluster = await startBenchCluster()
const probes: Probe[] = []
const systems: BenchSystem[] = []

type Cells = Record<string, number>
const minus = (b: Cells, a: Cells): Cells =>
  Object.fromEntries(
    [...new Set([...Object.keys(a), ...Object.keys(b)])].map((t) => [t, (b[t] ?? 0) - (a[t] ?? 0)]),
  )
const total = (c: Cells) => Object.values(c).reduce((s, n) => s + n, 0)

async function measure(sys: BenchSystem) {
  if (!sys.clientHeap || !sys.clientGc) throw new Error(`${sys.name}: not in a process of its own`)
  await sys.reset()
  const rec = pickupRecorder()
  await sys.start({ concurrency: 10, onStart: rec.onStart })
  let key = 0
  const startOf = async (k: number) => {
    const deadline = performance.now() + 5_000
    while (performance.now() < deadline) {
      const got = rec.pickedUp().length
      if (got >= k) return
      await Bun.sleep(2)
    }
    throw new Error(`${sys.name}: row ${k} not picked up within 5 s`)
  }
  try {
    for (let i = 0; i < WARM_ROWS; i++) {
      await sys.insertOne(++key)
      rec.committed(key)
      await Bun.sleep(20)
    }
    await startOf(key)
    const pickups: Cells[] = []
    const controls: Cells[] = []
    for (let s = 0; s < samples; s++) {
      for (const withRow of [true, false]) {
        await sys.clientGc()
        await Bun.sleep(200)
        const before = await sys.clientHeap()
        const t = performance.now()
        if (withRow) {
          await sys.insertOne(++key)
          rec.committed(key)
          await startOf(key)
          await Bun.sleep(SETTLE_MS)
        } else {
          // As long as a pickup's reading takes, so that both see the same idle time.
          await Bun.sleep(SETTLE_MS + 5)
        }
        const after = await sys.clientHeap()
        ;(withRow ? pickups : controls).push(minus(after, before))
        if (withRow && performance.now() - t > SETTLE_MS + 1_000) console.log('slow sample', s)
      }
    }
    const types = [...new Set([...pickups, ...controls].flatMap((c) => Object.keys(c)))]
    const byType = types
      .map((t) => ({
        type: t,
        pickup: median(pickups.map((c) => c[t] ?? 0)),
        control: median(controls.map((c) => c[t] ?? 0)),
      }))
      .map((r) => ({ ...r, net: r.pickup - r.control }))
      .filter((r) => r.net !== 0)
      .sort((a, b) => b.net - a.net)
    console.log(
      `${sys.name}: ${samples} pickups, cells per pickup (median) ${median(pickups.map(total))}, control ${median(controls.map(total))}`,
    )
    console.table(byType.slice(0, 25))
  } finally {
    await sys.stop()
  }
}

try {
  for (const key of keys) {
    await cluster.createDatabase(key)
    const probe = await openProbe(cluster.probeUrl(key))
    probes.push(probe)
    const sys = await placedSystem(key, cluster.url(key), probe)
    await sys.prepare()
    systems.push(sys)
  }
  for (const sys of systems) await measure(sys)
} finally {
  for (const s of systems) await s.dispose?.()
  for (const p of probes) await p.close()
  await cluster.stop()
}
