// Due timer: a sooner arm replaces a later timer, whatever the wall clock does meanwhile.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock, waitAtMost } from '../../src/clock.ts'
import { createDueTimer } from '../../src/outbox/due-timer.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** The system's clocks, the wall one stepped by `step.ms` (an NTP step, a VM resumed). */
function steppedClock(step: { ms: number }): Clock {
  return {
    now: () => Date.now() + step.ms,
    monotonic: () => performance.now(),
    sleep: systemClock.sleep,
  }
}

test('a wall clock stepped forward does not keep a sooner wake waiting for the later timer', async () => {
  const step = { ms: 0 }
  let fired!: () => void
  const wake = new Promise<void>((resolve) => {
    fired = resolve
  })
  const timer = createDueTimer({
    clock: steppedClock(step),
    horizonMs: () => Number.POSITIVE_INFINITY,
    stopped: () => false,
    fire: () => fired(),
  })
  try {
    // The backstop poll, a minute off ...
    timer.arm(60_000)
    // ... then the wall clock jumps an hour ahead, and a row falls due in 10 ms: on the wall
    // clock that wake would come after the poll's timer (an hour from "now"), so it was dropped
    // and the row waited for the poll.
    step.ms = 3_600_000
    timer.arm(10)
    await waitAtMost(systemClock, wake, 3_000)
  } finally {
    timer.clear()
  }
})

test('a later arm, or one past the horizon, keeps the sooner timer', async () => {
  const fires: number[] = []
  let fired!: () => void
  const wake = new Promise<void>((resolve) => {
    fired = resolve
  })
  const timer = createDueTimer({
    clock: steppedClock({ ms: 0 }),
    horizonMs: () => 1_000_000,
    stopped: () => false,
    fire: () => {
      fires.push(performance.now())
      fired()
    },
  })
  try {
    timer.arm(10)
    // At or past the horizon: not armed at all (the backstop poll comes first anyway).
    timer.arm(2_000_000)
    timer.arm(500_000)
    await waitAtMost(systemClock, wake, 3_000)
    expect(fires).toHaveLength(1)
  } finally {
    timer.clear()
  }
})
