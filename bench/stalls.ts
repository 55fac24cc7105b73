// Event-loop stalls of a process where systems' client sides run: their pickups wait through them.
//
// Systems sharing one process share its event loop, so one system's synchronous work delays
// another's pickup: pg-boss's 30 s instance heartbeat reads `v8.getHeapStatistics()`, which in Bun
// walks the heap (10–90 ms, growing with the heap that the drains before left). In a process of its
// own (bench/systems/hosted.ts) a system stalls only on its own work (its garbage collection, its
// timers). The report marks a pickup that a stall overlaps.

const TICK_MS = 5
/** A pickup of a few ms is skewed by a stall of 10 ms or more: the threshold the report marks. */
export const STALL_MS = 10

export interface Stall {
  from: number
  to: number
}

export interface StallWatch {
  /** Every stall so far (performance.now() times). */
  stalls(): readonly Stall[]
  stop(): void
}

/** The longest part of one of `stalls` inside [from, to], in ms; 0 if none. */
export function longestWithin(stalls: readonly Stall[], from: number, to: number): number {
  return Math.max(
    0,
    ...stalls
      .filter((s) => s.from < to && s.to > from)
      .map((s) => Math.min(s.to, to) - Math.max(s.from, from)),
  )
}

/** Records every gap between 5 ms ticks that is `thresholdMs` or more longer than a tick. */
export function watchStalls(thresholdMs: number): StallWatch {
  const stalls: Stall[] = []
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    if (now - last - TICK_MS >= thresholdMs) stalls.push({ from: last + TICK_MS, to: now })
    last = now
  }, TICK_MS)
  return {
    stalls: () => stalls,
    stop: () => clearInterval(timer),
  }
}
