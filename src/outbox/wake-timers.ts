// Wake timers: the drainer's two timers, one for the earliest due row and the backstop poll, and the poll's interval.
import type { Clock } from '../clock.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import { createDueTimer, type DueTimer } from './due-timer.ts'

export function createWakeTimers(d: {
  clock: Clock
  /** The backstop poll's interval, read at each wait: also the due timer's horizon. */
  pollMs: () => number
  stopped: () => boolean
  wake: () => void
  /** The backstop poll fired (not the due timer): asked before its wake. */
  polled?: () => void
}): { due: DueTimer; poll: DueTimer } {
  const due = createDueTimer({
    clock: d.clock,
    horizonMs: d.pollMs,
    stopped: d.stopped,
    fire: d.wake,
  })
  // The backstop poll: armed when the loop goes to wait and left running when a wake ends the wait
  // (cancelling it on every wake cost each pickup 0.03-0.05 ms). So a poll comes at most one
  // interval after a wait began, at most one extra claim per interval; a shorter interval
  // (polling once the listener is gone) arms a sooner timer at the next wait.
  const poll = createDueTimer({
    clock: d.clock,
    horizonMs: () => Number.POSITIVE_INFINITY,
    stopped: d.stopped,
    fire: () => {
      d.polled?.()
      d.wake()
    },
  })
  return { due, poll }
}

/**
 * The backstop poll's interval now: without LISTEN the poll is the only wake-up, so it must be
 * quick, by choice (polling) or while the LISTEN session is away (connecting, reconnecting: the
 * listener wakes the loop as it goes, so this is read at the wait that follows). Listening, or
 * stopped (the process is stopping), it keeps POLL_INTERVAL_SECONDS: the idle cost is unchanged.
 */
export function backstopPollMs(
  d: Pick<DrainerDeps, 'pollIntervalMs' | 'listener' | 'config'>,
): number {
  const state = d.listener.state()
  const deaf = state !== 'listening' && state !== 'stopped'
  return (
    d.pollIntervalMs?.() ??
    (deaf
      ? Math.min(1000, d.config.pollIntervalSeconds * 1000)
      : d.config.pollIntervalSeconds * 1000)
  )
}
