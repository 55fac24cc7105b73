// The shape every benchmarked system implements, so one driver measures them all the same way.

export interface StartOptions {
  concurrency: number
  /** Called when a job's handler (or send) starts, with the key given at insert. */
  onStart?: (key: number) => void
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
  /** Pickup latencies measured by the system itself (out-of-process systems); else undefined. */
  latenciesMs?(): Promise<number[]>
  /** Frees anything kept between runs (fakes). */
  dispose?(): Promise<void>
}
