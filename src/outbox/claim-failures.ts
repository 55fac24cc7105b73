// Claims failing in a row: since when (readiness reports it), whether the loop still retries them, the loop's bounded, jittered wait before the next, and the run's log lines.
import type { Clock } from '../clock.ts'
import { createFailureRun } from '../failure-run.ts'
import type { Logger } from '../log.ts'

const FIRST_WAIT_MS = 500
// Bounded: a database that comes back is used again within a few seconds, without spinning.
const MAX_WAIT_MS = 5_000

/**
 * Since when every claim has failed (a wall time), how long that is and how long ago the last failed
 * (monotonic ages, as read), its SQLSTATE, and whether the loop is still at it.
 */
export interface ClaimsFailing {
  since: number
  forMs: number
  lastAgoMs: number
  sqlstate: string | null
  /**
   * The loop has claimed again, or waits to, since the last failure: true from a failure until the
   * loop waits for a wake instead (its queue full, sends blocked). A claim in flight is no success
   * yet: behind a lock it may wait out a 30 s statement_timeout, twice the last failure's freshness.
   */
  retrying: boolean
}

interface ClaimFailures {
  /**
   * A claim failed: noted (logged when it starts a run of failures, changes its cause, or every
   * 5 minutes: a database down an hour is a few lines, not one per retry, 2.5-5 s apart); returns
   * how long the loop waits before it claims again.
   */
  failed(error: unknown): number
  /** A claim succeeded: the record is cleared (a run logged), and the wait starts over. */
  succeeded(): void
  /** The loop waits for a wake, claiming nothing meanwhile: the failures are no longer retried. */
  idle(): void
  /** Null after a claim succeeded (or before any failed). */
  current(): ClaimsFailing | null
}

export function createClaimFailures(clock: Clock, log: Logger): ClaimFailures {
  let waitMs = FIRST_WAIT_MS
  let retrying = false
  const run = createFailureRun({ log, clock, msg: 'claim failed; retrying' })
  return {
    failed(error) {
      run.failed(error)
      retrying = true
      const wait = waitMs * (0.5 + Math.random() / 2)
      waitMs = Math.min(waitMs * 2, MAX_WAIT_MS)
      return wait
    },
    succeeded() {
      const ended = run.succeeded()
      // A run of one was its own line; a longer one's end is said, or its last line stands.
      if (ended && ended.failures > 1) {
        log.info('claims succeed again', { failures: ended.failures, failingMs: ended.ms })
      }
      waitMs = FIRST_WAIT_MS
      retrying = false
    },
    idle() {
      retrying = false
    },
    current() {
      const failing = run.current()
      // A run's cause is its failures' code, so the failure it last logged has the latest one's.
      return (
        failing && {
          since: failing.since,
          forMs: failing.forMs,
          lastAgoMs: failing.lastAgoMs,
          sqlstate: sqlstateOf(failing.logged),
          retrying,
        }
      )
    },
  }
}

function sqlstateOf(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null
}
