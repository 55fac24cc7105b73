// A failure met again and again (a database down, a standby refusing writes) logged as a run: its start, a change of cause, a reminder every 5 minutes; not once per retry.
import type { Clock } from './clock.ts'
import type { Logger } from './log.ts'

/** While a run lasts, a line at least this often, so a log read at any time shows it is still on. */
const REMIND_MS = 5 * 60_000

/** A run that ended: how many failures it had and how long it lasted. */
export interface EndedRun {
  failures: number
  ms: number
}

export interface FailureRun {
  /**
   * A failure: logged at warn (`msg`, `fields`, `err`) when it starts a run, when its cause (its
   * code, else its message) differs from the last one logged, or when the last line is 5 minutes
   * old; after the first with the run's `failures` so far and `sinceMs`.
   */
  failed(err: unknown): void
  /** A success: ends the run, returned (null when none was on) for the caller's own line. */
  succeeded(): EndedRun | null
}

export function createFailureRun(o: {
  log: Logger
  clock: Pick<Clock, 'now'>
  msg: string
  fields?: Record<string, unknown>
}): FailureRun {
  let run: { since: number; failures: number; loggedAt: number; cause: string } | null = null
  return {
    failed(err) {
      const now = o.clock.now()
      const cause = causeOf(err)
      if (run === null) {
        run = { since: now, failures: 1, loggedAt: now, cause }
        o.log.warn(o.msg, { ...o.fields, err })
        return
      }
      run.failures += 1
      if (cause === run.cause && now - run.loggedAt < REMIND_MS) return
      run.cause = cause
      run.loggedAt = now
      o.log.warn(o.msg, { ...o.fields, err, failures: run.failures, sinceMs: now - run.since })
    },
    succeeded() {
      if (run === null) return null
      const ended = { failures: run.failures, ms: o.clock.now() - run.since }
      run = null
      return ended
    },
  }
}

function causeOf(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null
  if (typeof e?.code === 'string' && e.code !== '') return e.code
  return typeof e?.message === 'string' ? e.message : String(err)
}
