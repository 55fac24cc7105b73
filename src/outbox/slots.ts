// Slots: the process-wide bound on sends in flight (WORKER_CONCURRENCY), shared by every database's drainer.

export interface Slots {
  readonly size: number
  free(): number
  /** Takes a slot if one is free and nobody waits for one, without waiting. */
  tryAcquire(): boolean
  /** Waits for a slot (first come, first served); false when `signal` aborted first. */
  acquire(signal: AbortSignal): Promise<boolean>
  release(): void
}

export function createSlots(size: number): Slots {
  let used = 0
  const waiters: { grant: (ok: boolean) => void; signal: AbortSignal }[] = []
  // One abort listener per signal, not per waiter: a local queue may park hundreds of sends here.
  const watched = new WeakSet<AbortSignal>()
  const watch = (signal: AbortSignal) => {
    if (watched.has(signal)) return
    watched.add(signal)
    signal.addEventListener(
      'abort',
      () => {
        for (let i = waiters.length - 1; i >= 0; i--) {
          const w = waiters[i]!
          if (w.signal === signal) {
            waiters.splice(i, 1)
            w.grant(false)
          }
        }
      },
      { once: true },
    )
  }
  const tryAcquire = () => {
    if (used >= size || waiters.length > 0) return false
    used += 1
    return true
  }
  return {
    size,
    free: () => size - used,
    tryAcquire,
    acquire(signal) {
      if (signal.aborted) return Promise.resolve(false)
      if (tryAcquire()) return Promise.resolve(true)
      watch(signal)
      return new Promise<boolean>((grant) => waiters.push({ grant, signal }))
    },
    release() {
      // Hand the slot straight to the next waiter, so `used` never dips and lets a newcomer jump the queue.
      const next = waiters.shift()
      if (next) next.grant(true)
      else used = Math.max(0, used - 1)
    },
  }
}
