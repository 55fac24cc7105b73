// The shape every benchmarked system implements, so one driver measures them all the same way.
import type { Stall } from '../stalls.ts'
import type { PgTraceEvent } from './pg-trace.ts'

export interface StartOptions {
  concurrency: number
  /**
   * Called when a job's handler (or send) starts, with the key given at insert; `atMs` is when it
   * started (performance.now() of this process) if that was earlier than the call.
   */
  onStart?: (key: number, atMs?: number) => void
  /** A system in a process of its own watches that process's event loop from start to stop (clientStalls). */
  watchStallsMs?: number
}

export interface BenchSystem {
  /** Name in the table. */
  readonly name: string
  /** Database it lives in (one per system). */
  readonly database: string
  /** Installs its schema. */
  prepare(): Promise<void>
  /** Empties its queue tables between runs (also vacuums, outside any measured window). */
  reset(): Promise<void>
  /**
   * Inserts `n` jobs in one transaction; returns the WAL insert position just before the commit,
   * so the insert's own WAL is left out of the drain's.
   */
  insertBulk(n: number): Promise<string>
  /** Inserts one job in its own transaction (the way an application commits an outbox row). */
  insertOne(key: number): Promise<void>
  start(o: StartOptions): Promise<void>
  stop(): Promise<void>
  /** Jobs not yet recorded as done in the database (read by the probe role). */
  remaining(): Promise<number>
  /**
   * Send starts the system recorded itself, by key, in epoch milliseconds (out-of-process systems:
   * the binary's attempt history); else undefined, and starts come through `onStart`.
   */
  sendStartsMs?(): Promise<Map<number, number>>
  /** The process the client side runs in, when it is not this one (bench/systems/hosted.ts). */
  clientPid?(): number | null
  /**
   * How far a time that process reported (onStart's atMs, stalls, trace) may be off on this
   * process's clock, in ms: the clocks' offset is read over IPC, not known exactly.
   */
  clientClockErrorMs?(): number
  /** CPU time (µs, user + system) of the process the client side runs in, when it is not this one. */
  clientCpuMicros?(): Promise<number>
  /** Stalls of that process's event loop in the last run started with `watchStallsMs` (performance.now() times here). */
  clientStalls?(): Promise<Stall[]>
  /**
   * The pg statements and notifications of that process since the last call (performance.now()
   * times here), when it runs with BENCH_PG_TRACE=1 (bench/systems/pg-trace.ts); else empty.
   */
  clientTrace?(): Promise<PgTraceEvent[]>
  /** A full garbage collection in that process (Bun.gc(true)). */
  clientGc?(): Promise<void>
  /** That process's heap cells by type, without a collection first (newly allocated cells count until one runs). */
  clientHeap?(): Promise<Record<string, number>>
  /** Frees anything kept between runs (fakes, processes). */
  dispose?(): Promise<void>
}
