// The settle queue's retry bound (half a lease) and a stop's deadline: timed on the monotonic clock, whatever the wall clock does meanwhile.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import type { SettledRow, SettleItem } from '../../src/outbox/settle-item.ts'
import { createSettleQueue } from '../../src/outbox/settle-queue.ts'
import { finishWithinGrace, STOP_MARGIN_MS } from '../../src/outbox/shutdown-grace.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** A clock moved only by the test and by sleeps (which pass at once): the wall reading steps at will. */
function handClock() {
  const c = { wall: 1_750_000_000_000, mono: 1_000 }
  const clock: Clock = {
    now: () => c.wall,
    monotonic: () => c.mono,
    sleep: async (ms) => {
      c.wall += ms
      c.mono += ms
    },
  }
  return { c, clock }
}

const item: SettleItem = {
  id: '1',
  token: 't',
  settlement: { kind: 'sent' },
  startedAt: null,
}
const recorded: SettledRow = { id: '1', status: 'sent', outcome: 'sent', code: null }

test('a write that fails as the wall clock steps forward is retried within half a lease, not given up', async () => {
  const { c, clock } = handClock()
  let writes = 0
  const queue = createSettleQueue({
    clock,
    log: silentLogger,
    giveUpAfterMs: 15_000,
    write: async () => {
      if (writes++ > 0) return [recorded]
      // A failure of the statement's own (not the database away), and an NTP step meanwhile.
      c.wall += 3_600_000
      throw new Error('deadlock detected')
    },
  })
  // Given up, the row's lease would expire and be reclaimed as an interrupted send.
  expect(await queue.push(item)).toEqual(recorded)
  expect(writes).toBe(2)
})

test('a stop’s deadline ends the retries of a write also after the wall clock stepped back', async () => {
  const { c, clock } = handClock()
  let writes = 0
  const queue = createSettleQueue({
    clock,
    log: silentLogger,
    giveUpAfterMs: 15_000,
    write: async () => {
      writes++
      if (writes === 1) c.wall -= 3_600_000
      // The database away: retried until the stop's deadline, however long.
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
    },
  })
  // A stop with a 5 s grace: outcomes are recorded by a second before its bound (the grace + 8 s).
  await finishWithinGrace({
    deliveries: new Set(),
    graceMs: 5_000,
    startedAt: c.mono,
    clock,
    abort: new AbortController(),
    log: silentLogger,
    inFlight: () => 0,
    recordBy: queue.giveUpBy,
  })
  const stoppedAt = c.mono
  expect(await queue.push(item)).toBeNull()
  // Retried 200, 400, 800, … ms apart until the deadline, not for the hour the step added.
  expect(c.mono - stoppedAt).toBeLessThanOrEqual(5_000 + STOP_MARGIN_MS)
  expect(writes).toBeLessThanOrEqual(7)
})
