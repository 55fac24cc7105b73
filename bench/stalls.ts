// Event-loop stalls of the benchmark's own process: in-process systems' pickups wait through them.
//
// The in-process systems share one event loop, so one system's synchronous work delays another's
// pickup: pg-boss's 30 s instance heartbeat reads `v8.getHeapStatistics()`, which in Bun walks the
// heap (10–90 ms, growing with the heap that the drains before left). A row whose pickup such a
// stall overlaps measured the benchmark's process, not the system; the report marks it.

const TICK_MS = 5

export interface StallWatch {
  /** The longest part of one stall inside [from, to] (performance.now() times), in ms; 0 if none. */
  longestWithin(from: number, to: number): number
  stop(): void
}

/** Records every gap between 5 ms ticks that is `thresholdMs` or more longer than a tick. */
export function watchStalls(thresholdMs: number): StallWatch {
  const stalls: { from: number; to: number }[] = []
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    if (now - last - TICK_MS >= thresholdMs) stalls.push({ from: last + TICK_MS, to: now })
    last = now
  }, TICK_MS)
  return {
    longestWithin: (from, to) =>
      Math.max(
        0,
        ...stalls
          .filter((s) => s.from < to && s.to > from)
          .map((s) => Math.min(s.to, to) - Math.max(s.from, from)),
      ),
    stop: () => clearInterval(timer),
  }
}
