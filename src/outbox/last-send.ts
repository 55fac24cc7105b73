// A worker's newest recorded send, as its registry beat notes it (sql/0201): noted by the next beat that commits, once.
import { type Clock, monotonicNow } from '../clock.ts'
import type { WorkerIdentity } from './worker-identity.ts'

/** A send to note: when it was recorded (this process's monotonic clock) and how long ago that is. */
export interface UnnotedSend {
  atMs: number
  agoMs: number
}

export interface LastSend {
  /** A settlement recorded a row sent, just now. */
  recorded(): void
  /** The newest send recorded and not yet noted by a committed beat; null when none. */
  unnoted(): UnnotedSend | null
  /** A beat built from `beat` (beatNow) committed: the send it carried is noted. */
  beatCommitted(beat: WorkerIdentity): void
}

/**
 * Held in memory, read at each beat (worker-registration.ts's getter): no statement per send. The
 * beat writes it as now() less `agoMs`, database time, and never moves the entry's back; a beat
 * that failed leaves it unnoted, for the next. Once noted, beats write none: an entry moved back by
 * hand (a test's aging) stays so until the next send.
 */
export function createLastSend(clock: Pick<Clock, 'now' | 'monotonic'>): LastSend {
  let sentAt: number | null = null
  let notedAt: number | null = null
  return {
    recorded() {
      sentAt = monotonicNow(clock)
    },
    unnoted() {
      if (sentAt === null || (notedAt !== null && notedAt >= sentAt)) return null
      return { atMs: sentAt, agoMs: Math.max(0, monotonicNow(clock) - sentAt) }
    },
    beatCommitted(beat) {
      const s = beat.unnotedSend ?? null
      if (s !== null && (notedAt === null || s.atMs > notedAt)) notedAt = s.atMs
    },
  }
}
