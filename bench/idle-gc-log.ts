// `bun run bench/idle-gc-log.ts [rows] [gap ms]`: the engine's garbage collections through idle spells, beside its pickups.
//
// The engine hosted as the suite runs it (a process of its own, the image's environment), with
// JSC's GC log on in that process alone (BUN_JSC_logGC=1: one line per collection, eden or full,
// on stderr); after one warm pickup window, `rows` rows `gap` ms apart (11 s: the suite's quiet
// spell). This process prints a `===` line with seconds since its start at each insert and each
// pickup's latency, so the log shows which collections fall in an idle spell and which inside a
// pickup (round 34: Bun's GC timer collects about once a second through the whole spell).
// BENCH_IDLE_GC_MS and BUN_GC_TIMER_DISABLE, set by the caller, reach the engine's process.
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { latencyWindow, pickupRecorder } from './latency.ts'
import { hostedSystem } from './systems/hosted.ts'
import { outboxEngineSystem } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

const rows = Number(process.argv[2] ?? 5)
const gapMs = Number(process.argv[3] ?? 11_000)

await inImageEnv()
const cluster = await startBenchCluster()
const database = 'outbox_engine'
await cluster.createDatabase(database)
const probe = await openProbe(cluster.probeUrl(database))
const url = cluster.url(database)
const sys = hostedSystem(database, url, outboxEngineSystem(database, url, probe), undefined, {
  BUN_JSC_logGC: '1',
})
await sys.prepare()
const t0 = performance.now()
const mark = (text: string) =>
  console.error(`=== ${((performance.now() - t0) / 1000).toFixed(3)} s ${text}`)
try {
  mark('warm window')
  await latencyWindow(sys, { perSecond: 50, seconds: 1, concurrency: 10 })
  await sys.reset()
  const rec = pickupRecorder()
  await sys.start({ concurrency: 10, onStart: rec.onStart })
  mark('started')
  for (let k = 1; k <= rows; k++) {
    await Bun.sleep(gapMs)
    mark(`insert row ${k}`)
    await sys.insertOne(k)
    rec.committed(k)
    await Bun.sleep(200)
    const p = rec.pickedUp().at(-1)
    mark(`row ${k}: ${p ? (p.startedAt - p.committedAt).toFixed(2) : '–'} ms`)
  }
  await sys.stop()
} finally {
  await sys.dispose?.()
  await probe.close()
  await cluster.stop()
}
