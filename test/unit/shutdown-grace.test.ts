// The shutdown grace: its waits end with it, leaving no timer behind (a process that stops its workers then exits by itself).
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { finishWithinGrace, STOP_MARGIN_MS } from '../../src/outbox/shutdown-grace.ts'
import { boundedLatches } from '../support/bounded-latches.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** A send's bound: it ends within moments of the step that ends it (a finishing held past it names it). */
const LATCH_MS = 10_000

/** A clock whose sleeps end only when their signal aborts or `pass` moves time past them. */
function heldClock() {
  let at = 0
  const sleeping = new Set<{ until: number; end: () => void }>()
  const clock: Clock = {
    now: () => at,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve()
        const s = {
          until: at + ms,
          end: () => {
            sleeping.delete(s)
            resolve()
          },
        }
        sleeping.add(s)
        signal?.addEventListener('abort', s.end, { once: true })
      }),
  }
  return {
    clock,
    /** Sleeps begun and not ended: each a timer that keeps a process alive. */
    pending: () => sleeping.size,
    pass(ms: number) {
      at += ms
      for (const s of [...sleeping]) if (s.until <= at) s.end()
    },
  }
}

test('sends that finish within the grace leave no timer running after it', async () => {
  const held = heldClock()
  const latches = boundedLatches(LATCH_MS)
  const send = latches.make('the send ended within the grace')
  const finishing = finishWithinGrace({
    deliveries: new Set([send.wait()]),
    graceMs: 30_000,
    startedAt: 0,
    clock: held.clock,
    abort: new AbortController(),
    log: silentLogger,
    inFlight: () => 1,
    recordBy: () => {},
  })
  send.resolve()
  await latches.watch(finishing)
  expect(held.pending()).toBe(0)
})

test('sends aborted past the grace that then end leave no timer running either', async () => {
  const held = heldClock()
  const abort = new AbortController()
  const latches = boundedLatches(LATCH_MS)
  const send = latches.make('the send ended at its abort')
  abort.signal.addEventListener('abort', () => send.resolve())
  const finishing = finishWithinGrace({
    deliveries: new Set([send.wait()]),
    graceMs: 30_000,
    startedAt: 0,
    clock: held.clock,
    abort,
    log: silentLogger,
    inFlight: () => 1,
    recordBy: () => {},
  })
  // The grace's wait has begun (finishWithinGrace sleeps at once).
  expect(held.pending()).toBe(1)
  held.pass(30_000)
  await latches.watch(finishing)
  expect(abort.signal.aborted).toBe(true)
  expect(held.pending()).toBe(0)
})

test('the grace and the recording of outcomes count from the stop’s start, the recording until a second before its bound', async () => {
  const held = heldClock()
  const abort = new AbortController()
  const latches = boundedLatches(LATCH_MS)
  const send = latches.make('the send ended at its abort')
  abort.signal.addEventListener('abort', () => send.resolve())
  const recordBy: number[] = []
  // The stop began 3 s ago (a claim under way, its answer late): Fly's kill_timeout counts from
  // the signal, and so must the grace and the recording's deadline.
  const finishing = finishWithinGrace({
    deliveries: new Set([send.wait()]),
    graceMs: 4_000,
    startedAt: -3_000,
    clock: held.clock,
    abort,
    log: silentLogger,
    inFlight: () => 1,
    recordBy: (deadline) => recordBy.push(deadline),
  })
  held.pass(1_000)
  await new Promise((r) => setImmediate(r))
  const abortedAtGraceEnd = abort.signal.aborted
  held.pass(60_000)
  await latches.watch(finishing)
  expect({ abortedAtGraceEnd, recordBy }).toEqual({
    abortedAtGraceEnd: true,
    recordBy: [-3_000 + 4_000 + STOP_MARGIN_MS - 1_000],
  })
})
