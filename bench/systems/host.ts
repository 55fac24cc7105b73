// The child side of bench/systems/hosted.ts: one system's client (its workers) in a process of its own.
//
// `bun bench/systems/host.ts <key> <url>`, started by hosted.ts with an IPC channel. Requests
// (HostOp): start, stop, the process's CPU time, the event-loop stalls of the last run, its pg trace
// (BENCH_PG_TRACE=1), a full garbage collection (bench/idle-stages.ts's STAGES_GC), the heap's cells
// by type without a collection (bench/pickup-allocations.ts); each gets
// {id, ok, value?, error?}. Handler starts go up as {op: 'starts', at: [key, epochMs, key, epochMs, …]}, gathered per
// turn of the event loop (a drain starts thousands a second) and always sent before the reply to the
// request that follows them, so a stop's reply comes after every start it ended. Times cross over as
// epoch milliseconds (performance.timeOrigin + performance.now()): Bun's hrtime and performance.now()
// count from each process's own start. `ready` says `clock`: the `clock` op reads that epoch now,
// and hosted.ts takes its offset from the readings (each timeOrigin is the wall clock at a process's
// start, so the two differ by any step of it in between).
import { heapStats } from 'bun:jsc'
import { type Stall, type StallWatch, watchStalls } from '../stalls.ts'
import { systemByKey } from './by-key.ts'
import { installPgTrace, type PgTraceEvent, takePgTrace } from './pg-trace.ts'
import type { Probe } from './probe.ts'

export type HostOp =
  | { op: 'start'; concurrency: number; watchStallsMs?: number }
  | { op: 'stop' }
  | { op: 'cpu' }
  | { op: 'stalls' }
  | { op: 'trace' }
  | { op: 'gc' }
  | { op: 'heap' }
  | { op: 'clock' }
/** A reply's value: CPU µs, stalls, a pg trace, or cells by type. */
export type HostValue = number | Stall[] | PgTraceEvent[] | Record<string, number>
export type HostRequest = HostOp & { id: number }
export type HostMessage =
  | { op: 'ready'; clock?: true }
  | { op: 'starts'; at: number[] }
  | { id: number; ok: true; value?: HostValue }
  | { id: number; ok: false; error: string }

// Inserts, resets and progress checks stay in the benchmark's process, on its probe connection.
const noProbe: Probe = {
  query: () => Promise.reject(new Error('the probe is not available in a host process')),
  insertAndMark: () => Promise.reject(new Error('the probe is not available in a host process')),
  close: async () => {},
}

if (import.meta.main) {
  const [key, url] = process.argv.slice(2)
  if (!key || !url || !process.send) {
    console.error(
      'usage: bun bench/systems/host.ts <key> <url> (started by bench/systems/hosted.ts)',
    )
    process.exit(2)
  }
  const send = (m: HostMessage) => process.send!(m)
  // bench/idle-stages.ts: every pg client's statements and notifications, read by the `trace` op.
  if (process.env.BENCH_PG_TRACE === '1') installPgTrace()
  const sys = await systemByKey(key, url, noProbe)
  const epoch = (t: number) => performance.timeOrigin + t
  let starts: number[] = []
  let flushing = false
  const flush = () => {
    flushing = false
    if (starts.length === 0) return
    send({ op: 'starts', at: starts })
    starts = []
  }
  const onStart = (k: number) => {
    starts.push(k, epoch(performance.now()))
    if (!flushing) {
      flushing = true
      setImmediate(flush)
    }
  }
  let watch: StallWatch | null = null
  process.on('message', async (r: HostRequest) => {
    try {
      let value: HostValue | undefined
      if (r.op === 'start') {
        watch = r.watchStallsMs === undefined ? null : watchStalls(r.watchStallsMs)
        await sys.start({ concurrency: r.concurrency, onStart })
      } else if (r.op === 'stop') {
        await sys.stop()
        watch?.stop()
      } else if (r.op === 'stalls') {
        value = (watch?.stalls() ?? []).map((s) => ({ from: epoch(s.from), to: epoch(s.to) }))
      } else if (r.op === 'trace') {
        value = takePgTrace()
      } else if (r.op === 'gc') {
        Bun.gc(true)
      } else if (r.op === 'clock') {
        value = epoch(performance.now())
      } else if (r.op === 'heap') {
        // Cells allocated since the last collection count until it runs (no collection here).
        value = heapStats().objectTypeCounts
      } else {
        const u = process.cpuUsage()
        value = u.user + u.system
      }
      flush()
      send(value === undefined ? { id: r.id, ok: true } : { id: r.id, ok: true, value })
    } catch (e) {
      flush()
      send({ id: r.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) })
    }
  })
  // The benchmark's process went away (finished or killed): so does this one.
  process.on('disconnect', () => process.exit(0))
  send({ op: 'ready', clock: true })
}
