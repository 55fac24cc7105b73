// A benchmarked system whose client side (its workers) runs in a Bun process of its own; the rest stays here.
//
// Systems sharing one process weigh on each other: one's synchronous work stalls the others'
// pickups (round 13: pg-boss's heartbeat). In a process each, a system is measured as it is
// deployed, alone. Inserts, resets and progress checks still run here, on the probe; only start,
// stop and the process's own readings (CPU time, stalls) cross over (bench/systems/host.ts).
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import type { Stall } from '../stalls.ts'
import { checkSystemKeys, systemByKey } from './by-key.ts'
import type { HostMessage, HostOp, HostValue } from './host.ts'
import type { PgTraceEvent } from './pg-trace.ts'
import type { Probe } from './probe.ts'
import type { BenchSystem, StartOptions } from './system.ts'

const HOST = join(import.meta.dir, 'host.ts')

/** Each system's client in a process of its own, unless BENCH_SHARED_PROCESS=1 (as before round 15). */
export const OWN_PROCESSES = process.env.BENCH_SHARED_PROCESS !== '1'

/** The system `key` as the suite runs it: in a process of its own unless shared (the binary always is one). */
export async function placedSystem(key: string, url: string, probe: Probe): Promise<BenchSystem> {
  const inner = await systemByKey(key, url, probe)
  return OWN_PROCESSES && key !== 'outbox_binary' ? hostedSystem(key, url, inner) : inner
}

type Value = HostValue | undefined
type Pending = { resolve: (v: Value) => void; reject: (e: Error) => void }
/** Clock readings asked of a new host: the one answered soonest sets the offset (NTP's choice). */
const CLOCK_READINGS = 5

/**
 * `host`: the child's script; another checkout's bench/systems/host.ts runs that checkout's client
 * code (bench/pickup-turns.ts's PICKUP_ENGINE_FROM), with this one's inserts and readings. `env`:
 * variables for this child alone, over this process's (a runtime setting read at its start).
 */
export function hostedSystem(
  key: string,
  url: string,
  inner: BenchSystem,
  host = HOST,
  env: Record<string, string> = {},
): BenchSystem {
  checkSystemKeys([key])
  let child: Subprocess<'ignore', 'inherit', 'inherit'> | null = null
  let ready: Promise<void> = Promise.resolve()
  let nextId = 1
  const waiting = new Map<number, Pending>()
  let onStart: StartOptions['onStart']
  // The host's epoch milliseconds to this process's performance.now(). Each process reads epochs
  // against its own performance.timeOrigin, taken from the wall clock at its start: a step of that
  // clock between the two starts (a VM's) put the host's readings that far off. So the offset is
  // read from the host's clock over IPC; a host.ts that cannot say it (another checkout's, older)
  // is read against this process's timeOrigin, as before.
  let local = (epochMs: number) => epochMs - performance.timeOrigin
  // How far a converted time may be off: half the round trip of the reading that set the offset
  // (the host read its clock somewhere in it); unknown while the offset is read against timeOrigin.
  let clockErrorMs = Number.POSITIVE_INFINITY

  async function readClock(proc: Subprocess<'ignore', 'inherit', 'inherit'>) {
    let best: { roundTripMs: number; offsetMs: number } | null = null
    for (let i = 0; i < CLOCK_READINGS; i++) {
      const asked = performance.now()
      const epochMs = Number(await ask(proc, { op: 'clock' }))
      const answered = performance.now()
      // The reading was taken between asking and the answer: its midpoint, off by at most half
      // the round trip.
      const offsetMs = epochMs - (asked + answered) / 2
      if (!best || answered - asked < best.roundTripMs)
        best = { roundTripMs: answered - asked, offsetMs }
    }
    const offsetMs = best!.offsetMs
    local = (epochMs: number) => epochMs - offsetMs
    clockErrorMs = best!.roundTripMs / 2
  }

  function spawn() {
    let up!: () => void
    let down!: (e: Error) => void
    ready = new Promise<void>((resolve, reject) => {
      up = resolve
      down = reject
    })
    const proc = Bun.spawn([process.execPath, host, key, url], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, ...env },
      ipc(m: HostMessage, proc) {
        if ('op' in m) {
          if (m.op === 'ready') {
            if (m.clock) readClock(proc).then(up, down)
            else up()
          } else for (let i = 0; i < m.at.length; i += 2) onStart?.(m.at[i]!, local(m.at[i + 1]!))
          return
        }
        const w = waiting.get(m.id)
        waiting.delete(m.id)
        if (m.ok) w?.resolve(m.value)
        else w?.reject(new Error(`${inner.name}, in its own process: ${m.error}`))
      },
    })
    child = proc
    void proc.exited.then((code) => {
      const e = new Error(`${inner.name}: its process exited (code ${code})`)
      down(e)
      for (const w of waiting.values()) w.reject(e)
      waiting.clear()
      if (child === proc) child = null
    })
  }

  async function request(r: HostOp): Promise<Value> {
    if (!child) spawn()
    await ready
    const proc = child
    if (!proc) throw new Error(`${inner.name}: its process is gone`)
    return ask(proc, r)
  }

  function ask(proc: Subprocess<'ignore', 'inherit', 'inherit'>, r: HostOp): Promise<Value> {
    const id = nextId++
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject })
      try {
        proc.send({ ...r, id })
      } catch (e) {
        waiting.delete(id)
        reject(new Error(`${inner.name}: its process is unreachable (${String(e)})`))
      }
    })
  }

  return {
    name: inner.name,
    database: inner.database,
    prepare: () => inner.prepare(),
    reset: () => inner.reset(),
    insertBulk: (n) => inner.insertBulk(n),
    insertOne: (k) => inner.insertOne(k),
    remaining: () => inner.remaining(),
    async start(o) {
      onStart = o.onStart
      await request({ op: 'start', concurrency: o.concurrency, watchStallsMs: o.watchStallsMs })
    },
    async stop() {
      await request({ op: 'stop' })
      onStart = undefined
    },
    clientPid: () => child?.pid ?? null,
    clientClockErrorMs: () => clockErrorMs,
    clientCpuMicros: async () => Number(await request({ op: 'cpu' })),
    async clientStalls() {
      const stalls = (await request({ op: 'stalls' })) as Stall[]
      return stalls.map((s) => ({ from: local(s.from), to: local(s.to) }))
    },
    async clientGc() {
      await request({ op: 'gc' })
    },
    async clientHeap() {
      return (await request({ op: 'heap' })) as Record<string, number>
    },
    async clientTrace() {
      const events = (await request({ op: 'trace' })) as PgTraceEvent[]
      return events.map((e) => ({ ...e, at: local(e.at) }))
    },
    async dispose() {
      const proc = child
      if (proc) {
        proc.kill()
        await proc.exited
      }
      await inner.dispose?.()
    },
  }
}
