// Claims failing in a row: since when (readiness reports it), and the loop's bounded, jittered wait before the next.
import type { Clock } from '../clock.ts'

const FIRST_WAIT_MS = 500
// Bounded: a database that comes back is used again within a few seconds, without spinning.
const MAX_WAIT_MS = 5_000

/** Since when every claim has failed, the last failure and its SQLSTATE. */
export interface ClaimsFailing {
  since: number
  lastAt: number
  sqlstate: string | null
}

interface ClaimFailures {
  /** A claim failed: noted; returns how long the loop waits before it claims again. */
  failed(error: unknown): number
  /** A claim succeeded: the record is cleared and the wait starts over. */
  succeeded(): void
  /** Null after a claim succeeded (or before any failed). */
  current(): ClaimsFailing | null
}

export function createClaimFailures(clock: Clock): ClaimFailures {
  let failing: ClaimsFailing | null = null
  let waitMs = FIRST_WAIT_MS
  return {
    failed(error) {
      const code = (error as { code?: unknown } | null)?.code
      failing = {
        since: failing?.since ?? clock.now(),
        lastAt: clock.now(),
        sqlstate: typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null,
      }
      const wait = waitMs * (0.5 + Math.random() / 2)
      waitMs = Math.min(waitMs * 2, MAX_WAIT_MS)
      return wait
    },
    succeeded() {
      failing = null
      waitMs = FIRST_WAIT_MS
    },
    current: () => failing,
  }
}
