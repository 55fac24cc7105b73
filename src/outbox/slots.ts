// Slots: the process-wide bound on sends in flight (WORKER_CONCURRENCY), shared by every database's drainer.

export interface Slots {
  readonly size: number
  free(): number
  /** Takes up to `wanted` slots; returns how many were taken. */
  take(wanted: number): number
  release(count?: number): void
  /** Called after every release. */
  onRelease(listener: () => void): () => void
}

export function createSlots(size: number): Slots {
  let used = 0
  const listeners = new Set<() => void>()
  return {
    size,
    free: () => size - used,
    take: (wanted) => {
      const n = Math.max(0, Math.min(wanted, size - used))
      used += n
      return n
    },
    release: (count = 1) => {
      used = Math.max(0, used - count)
      for (const l of listeners) l()
    },
    onRelease: (l) => {
      listeners.add(l)
      return () => listeners.delete(l)
    },
  }
}
