// A session's statements past migrate's deadline, each bounded, none sent while an earlier one has not answered.
import type pg from 'pg'
import { monotonicNow, systemClock, waitAtMost } from '../clock.ts'

export interface BoundedSession {
  /**
   * `q`'s result (one statement, or several in turn, on the session) once the earlier statement
   * given here has answered, all within `ms`; null when `q` failed, or went unanswered within what
   * was left (it runs on, and the next waits for it), or the earlier one did (`q` is then not sent).
   */
  within<T>(q: (client: pg.Client) => Promise<T>, ms: number): Promise<T | null>
}

/**
 * pg@9 refuses a statement handed to a client while one runs on it (pg@8 queues it behind): one
 * given up on at its bound (a session gone silent, as after a partition) still runs, so the next
 * waits for its answer and, when none comes, is never sent. Every statement the session was given
 * before this has answered (migrate: its cancelled statement's error began the stop).
 */
export function boundedSession(client: pg.Client): BoundedSession {
  let last: Promise<unknown> = Promise.resolve()
  return {
    async within(q, ms) {
      const until = monotonicNow(systemClock) + ms
      const answered = last.then(
        () => true,
        () => true,
      )
      if (!(await waitAtMost(systemClock, answered, ms).catch(() => false))) return null
      const run = q(client)
      last = run
      const left = Math.max(1, until - monotonicNow(systemClock))
      return waitAtMost(systemClock, run, left).catch(() => null)
    },
  }
}
