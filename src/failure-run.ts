// A failure met again and again (a database down, a standby refusing writes, a mailbox Graph refuses) logged as a run: its start, a change of cause, a reminder while it lasts; not once per retry.
import { type Clock, monotonicNow } from './clock.ts'
import type { Logger } from './log.ts'

/** While a run lasts, a line at least this often, so a log read at any time shows it is still on. */
const REMIND_MS = 5 * 60_000

/** A run that ended: how many failures it had and how long it lasted. */
export interface EndedRun {
  failures: number
  ms: number
}

/**
 * A run still on: since when (a wall time, to show), its failures so far, how long it has lasted and
 * how long ago its last failure was met (monotonic ages, as read), and the failure its last line told of.
 */
export interface OngoingRun<F> {
  since: number
  failures: number
  forMs: number
  lastAgoMs: number
  logged: F
}

export interface FailureRun<F = unknown> {
  /**
   * A failure: logged (`msg`, `fields`, `err`) when it starts a run, when its cause (its code, else
   * its message) differs from the last one logged, or when the last line is `remindMs` old; after
   * the first with the run's `failures` so far and `sinceMs`.
   */
  failed(failure: F): void
  /** A success: ends the run, returned (null when none was on) for the caller's own line. */
  succeeded(): EndedRun | null
  /** The run as it stands; null when none is on. */
  current(): OngoingRun<F> | null
}

export function createFailureRun<F = unknown>(o: {
  log: Logger
  /** Wall time for a run's start; its windows and ages on the monotonic clock (a step is no span). */
  clock: Pick<Clock, 'now' | 'monotonic'>
  msg: string
  fields?: Record<string, unknown>
  /** Its lines' level (default warn). */
  level?: 'warn' | 'error'
  /** A line at least this often while the run lasts (default 5 minutes); null: none. */
  remindMs?: number | null
  /** A run whose last failure is this old has ended unheard (default: never). */
  staleMs?: number
  /** A line's fields, in place of `fields`, the error and the run's count. */
  fieldsOf?: (failure: F) => Record<string, unknown>
}): FailureRun<F> {
  const remindMs = o.remindMs === undefined ? REMIND_MS : (o.remindMs ?? Number.POSITIVE_INFINITY)
  const staleMs = o.staleMs ?? Number.POSITIVE_INFINITY
  const say = (failure: F, count: { failures: number; sinceMs: number } | null) =>
    o.log[o.level ?? 'warn'](
      o.msg,
      o.fieldsOf ? o.fieldsOf(failure) : { ...o.fields, err: failure, ...count },
    )
  // startedAt, lastAt, loggedAt: monotonic readings; since: the wall time of the first failure.
  interface Run {
    since: number
    startedAt: number
    failures: number
    lastAt: number
    loggedAt: number
    logged: F
    cause: string
  }
  let run: Run | null = null
  const ongoingAt = (now: number) => (run && now - run.lastAt < staleMs ? run : null)
  return {
    failed(failure) {
      const now = monotonicNow(o.clock)
      const cause = causeOf(failure)
      const ongoing = ongoingAt(now)
      if (ongoing === null) {
        const since = o.clock.now()
        run = {
          since,
          startedAt: now,
          failures: 1,
          lastAt: now,
          loggedAt: now,
          logged: failure,
          cause,
        }
        say(failure, null)
        return
      }
      ongoing.failures += 1
      ongoing.lastAt = now
      if (cause === ongoing.cause && now - ongoing.loggedAt < remindMs) return
      ongoing.cause = cause
      ongoing.logged = failure
      ongoing.loggedAt = now
      say(failure, { failures: ongoing.failures, sinceMs: now - ongoing.startedAt })
    },
    succeeded() {
      if (run === null) return null
      const now = monotonicNow(o.clock)
      const ongoing = ongoingAt(now)
      run = null
      return ongoing && { failures: ongoing.failures, ms: now - ongoing.startedAt }
    },
    current() {
      const now = monotonicNow(o.clock)
      const ongoing = run === null ? null : ongoingAt(now)
      return (
        ongoing && {
          since: ongoing.since,
          failures: ongoing.failures,
          forMs: now - ongoing.startedAt,
          lastAgoMs: now - ongoing.lastAt,
          logged: ongoing.logged,
        }
      )
    },
  }
}

function causeOf(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null
  if (typeof e?.code === 'string' && e.code !== '') return e.code
  return typeof e?.message === 'string' ? e.message : String(err)
}
