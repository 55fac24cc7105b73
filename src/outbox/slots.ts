// Slots: the process-wide bound on sends in flight (WORKER_CONCURRENCY), shared by every database's drainer.

export interface Slots {
  readonly size: number
  free(): number
  /** Waits for a slot (first come, first served); false when `signal` aborted first. */
  acquire(signal: AbortSignal): Promise<boolean>
  release(): void
}

export function createSlots(size: number): Slots {
  let used = 0
  const waiters: (() => void)[] = []
  return {
    size,
    free: () => size - used,
    acquire(signal) {
      if (signal.aborted) return Promise.resolve(false)
      if (used < size && waiters.length === 0) {
        used += 1
        return Promise.resolve(true)
      }
      return new Promise<boolean>((resolve) => {
        const grant = () => {
          signal.removeEventListener('abort', abort)
          resolve(true)
        }
        const abort = () => {
          const i = waiters.indexOf(grant)
          if (i >= 0) waiters.splice(i, 1)
          resolve(false)
        }
        waiters.push(grant)
        signal.addEventListener('abort', abort, { once: true })
      })
    },
    release() {
      // Hand the slot straight to the next waiter, so `used` never dips and lets a newcomer jump the queue.
      const next = waiters.shift()
      if (next) next()
      else used = Math.max(0, used - 1)
    },
  }
}
