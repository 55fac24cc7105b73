// Lease deadlines: how much lease a send must have left before it starts.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock } from '../../src/clock.ts'
import type { Lease } from '../../src/outbox/claim.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function at(ms: number): Clock {
  return { now: () => ms, sleep: async () => {} }
}

const lease = { id: '1', token: 't' } as Lease

describe('lease deadlines', () => {
  test('a wall clock stepped back (an NTP step, a resumed VM) does not stretch a lease: it ends on the monotonic clock', () => {
    let wall = 1_000_000
    let monotonic = 5_000
    const clock: Clock = { now: () => wall, monotonic: () => monotonic, sleep: async () => {} }
    const d = createLeaseDeadlines(clock, 60_000)
    // Granted by a statement sent 10 ms before the answer came.
    d.confirm([lease], monotonic - 10)
    expect(d.holds(lease)).toBe(true)
    // A lease length passes; meanwhile the wall clock is stepped back an hour.
    monotonic += 60_000
    wall += 60_000 - 3_600_000
    expect(d.holds(lease)).toBe(false)
    // Stepped forward instead, it does not end a lease early either.
    const e = createLeaseDeadlines(clock, 60_000)
    e.confirm([lease], monotonic)
    wall += 3_600_000
    expect(e.holds(lease)).toBe(true)
    // Stepped back while the statement ran: the lease holds all the same (it was left unconfirmed).
    const f = createLeaseDeadlines(clock, 60_000)
    const sentAt = monotonic
    wall -= 3_600_000
    monotonic += 10
    f.confirm([lease], sentAt)
    expect(f.holds(lease)).toBe(true)
  })

  test('a Graph send starts only with its request timeout of lease left', () => {
    // Defaults: LEASE_SECONDS 60, heartbeats every 20 s, GRAPH_REQUEST_TIMEOUT_SECONDS 30.
    const holdsAt = (ms: number) => {
      const d = createLeaseDeadlines(at(ms), 60_000, { sendTimeoutMs: 30_000, heartbeatMs: 20_000 })
      d.confirm([lease], 0)
      return d.holds(lease)
    }
    // Right after a heartbeat, and up to the next one (40 s left): sends start.
    expect(holdsAt(0)).toBe(true)
    expect(holdsAt(20_000)).toBe(true)
    // Two heartbeats missed: 30 s left is not enough for a request that may take 30 s.
    expect(holdsAt(30_000)).toBe(false)
    expect(holdsAt(50_000)).toBe(false)
  })

  test('a short send (file, discard) keeps a tenth of the lease, at most 5 s', () => {
    const holdsAt = (ms: number) => {
      const d = createLeaseDeadlines(at(ms), 60_000)
      d.confirm([lease], 0)
      return d.holds(lease)
    }
    expect(holdsAt(50_000)).toBe(true)
    expect(holdsAt(55_000)).toBe(false)
  })

  test('the margin never holds back a send between two heartbeats that work', () => {
    // Request timeout at its largest (half the lease) and heartbeats at the longest the
    // configuration then takes (LEASE_SECONDS minus the timeout minus 2), answered within a second.
    const d = createLeaseDeadlines(at(28_999), 60_000, {
      sendTimeoutMs: 30_000,
      heartbeatMs: 28_000,
    })
    d.confirm([lease], 0)
    expect(d.holds(lease)).toBe(true)
  })

  test('a lease once lost stays lost: a later statement that confirms it (the heartbeat of a lease the send gave up on) does not revive it', () => {
    const d = createLeaseDeadlines(at(1_000), 60_000)
    d.confirm([lease], 1_000)
    d.markLost(lease)
    expect(d.holds(lease)).toBe(false)
    d.confirm([lease], 1_000)
    expect(d.isLost(lease)).toBe(true)
    expect(d.holds(lease)).toBe(false)
  })

  test('a lease never confirmed does not hold', () => {
    expect(createLeaseDeadlines(at(1_000), 60_000).holds({ ...lease } as Lease)).toBe(false)
  })

  test('a lease short of its margin waits for a statement in flight only while its extension could give the margin back, and only for one that could', async () => {
    let now = 0
    const sleeps: number[] = []
    // A sleep that runs out (the answer never comes): the clock is then where it would be.
    const clock: Clock = {
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms)
        now += ms
      },
    }
    const never = new AbortController().signal
    const l = { ...lease } as Lease
    // A 60 s lease and a short send's 5 s margin: confirmed at 0, held up to 55 s.
    const claimedAtZero = (c: Clock) => {
      const d = createLeaseDeadlines(c, 60_000)
      d.confirm([l], 0)
      now = 56_000
      return d
    }
    // Nothing in flight: decided at once.
    expect(await claimedAtZero(clock).heldOnceAnswered(l, never)).toBe(false)
    // A heartbeat sent at 20 s, unanswered: waited for until its extension (to 80 s) would leave
    // no margin either, then not held.
    const d = claimedAtZero(clock)
    d.asked([l], 20_000)
    expect(await d.heldOnceAnswered(l, never)).toBe(false)
    expect(sleeps).toEqual([19_000])
    // One that answers it extended the lease: held, the wait cut short by the answer.
    const c = claimedAtZero({ ...clock, sleep: systemClock.sleep })
    const answered = c.asked([l], 20_000)
    const held = c.heldOnceAnswered(l, never)
    c.confirm([l], 20_000)
    answered()
    expect(await held).toBe(true)
    sleeps.length = 0
    // One whose extension would not leave the margin either (sent at 0) is not waited for.
    const e = claimedAtZero(clock)
    e.asked([l], 0)
    expect(await e.heldOnceAnswered(l, never)).toBe(false)
    // Nor one for a lease already lost.
    const f = claimedAtZero(clock)
    f.asked([l], 20_000)
    f.markLost(l)
    expect(await f.heldOnceAnswered(l, never)).toBe(false)
    expect(sleeps).toEqual([])
  })

  test('a wait goes on only after an answer: a sleep that ends with no answer (no time passed on a test clock) ends it', async () => {
    const l = { ...lease } as Lease
    const d = createLeaseDeadlines(at(56_000), 60_000)
    d.confirm([l], 0)
    d.asked([l], 20_000)
    expect(await d.heldOnceAnswered(l, new AbortController().signal)).toBe(false)
  })
})
