// A garbage collection once the bench engine has sent nothing for a while (round 34's experiment; off unless BENCH_IDLE_GC_MS is set).
//
// BENCH_IDLE_GC_MS=<ms>: after a send, once that long passes with no other, one Bun.gc: a full,
// synchronous collection and sweep, or with BENCH_IDLE_GC_KIND=eden Bun.gc(false)'s asynchronous
// eden collection. Never on the pickup's path: a send only stores the time, and arms the one timer
// when none is armed (rearming it per send would cost each pickup a timer). Measured in round 34
// (BENCHMARKS.md) against the engine without it, and not taken into the product.
export function idleCollection(
  env: Record<string, string | undefined> = process.env,
  collect: (full: boolean) => void = Bun.gc,
): { sent(): void; stop(): void } {
  const idleMs = Number(env.BENCH_IDLE_GC_MS ?? 0)
  const full = env.BENCH_IDLE_GC_KIND !== 'eden'
  let last = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  const check = () => {
    const left = last + idleMs - performance.now()
    if (left > 0) {
      timer = setTimeout(check, left)
      return
    }
    timer = null
    collect(full)
  }
  return {
    sent() {
      if (idleMs <= 0) return
      last = performance.now()
      timer ??= setTimeout(check, idleMs)
    },
    stop() {
      if (timer !== null) clearTimeout(timer)
      timer = null
    },
  }
}
