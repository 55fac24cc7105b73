// The shutdown grace: sends in flight may finish within it (their outcomes recorded by its end); past it they are aborted (each left retryable) and briefly waited for.
import { type Clock, monotonicNow, waitAtMost } from '../clock.ts'
import type { Logger } from '../log.ts'

/** At most this long for the aborted sends to settle: a send that ignores its abort does not hold the stop. */
export const ABORTED_SENDS_WAIT_MS = 5_000

/**
 * Resolves when every delivery has finished, or `graceMs` after the call: then `abort` is fired (the
 * sends still running end, marked ambiguous) and the deliveries are waited for a little more. A wait
 * that the deliveries end first leaves no timer behind: a process that stops its workers exits then,
 * not a grace later.
 */
export async function finishWithinGrace(g: {
  deliveries: ReadonlySet<Promise<void>>
  graceMs: number
  clock: Clock
  abort: AbortController
  log: Logger
  /** The sends in flight, as logged when the grace is over. */
  inFlight: () => number
  /**
   * Told when (a monotonicNow reading) the recording of outcomes must give up (giveUpBy): with the
   * database down, retrying them (up to half a lease per batch) held the stop past Fly's
   * kill_timeout. Unrecorded, their leases expire and are reclaimed.
   */
  recordBy: (deadline: number) => void
}): Promise<void> {
  g.recordBy(monotonicNow(g.clock) + g.graceMs + ABORTED_SENDS_WAIT_MS)
  // A delivery never rejects (claim-round catches its failure): a rejection here is the wait's end.
  const all = Promise.all([...g.deliveries])
  const finished = await waitAtMost(g.clock, all, g.graceMs).then(
    () => true,
    () => false,
  )
  if (finished) return
  g.log.warn('shutdown grace over; aborting sends in flight', { inFlight: g.inFlight() })
  g.abort.abort()
  await waitAtMost(g.clock, all, ABORTED_SENDS_WAIT_MS).catch(() => {})
}
