// The shutdown grace: sends in flight may finish within it (their outcomes recorded by its end); past it they are aborted (each left retryable) and briefly waited for.
import { type Clock, monotonicNow, waitAtMost } from '../clock.ts'
import type { Logger } from '../log.ts'

/** At most this long for the aborted sends to settle: a send that ignores its abort does not hold the stop. */
export const ABORTED_SENDS_WAIT_MS = 5_000

/**
 * How long past the grace a stop may take before it is given up (run-until-signalled.ts), counted
 * from the signal: under fly.toml's kill_timeout, which keeps 10 s over the grace.
 */
export const STOP_MARGIN_MS = 8_000

/**
 * The recording of outcomes gives up this long before the stop's bound: time for its last line.
 * Until then it has the time: a send the provider accepted and left unrecorded is reclaimed as an
 * interrupted one (looked up, sent again or held: serve-stop.ts unrecordedStopLine).
 */
const RECORDING_MARGIN_MS = 1_000

/**
 * Resolves when every delivery has finished, or `graceMs` after the stop began: then `abort` is
 * fired (the sends still running end, marked ambiguous) and the deliveries are waited for a little
 * more. A wait that the deliveries end first leaves no timer behind: a process that stops its workers
 * exits then, not a grace later.
 */
export async function finishWithinGrace(g: {
  deliveries: ReadonlySet<Promise<void>>
  graceMs: number
  /**
   * When the stop began (a monotonicNow reading): Fly's kill_timeout counts from its signal, and a
   * claim under way, its answer late, ended the loop seconds later.
   */
  startedAt: number
  clock: Clock
  abort: AbortController
  log: Logger
  /** The sends in flight, as logged when the grace is over. */
  inFlight: () => number
  /**
   * Told when (a monotonicNow reading) the recording of outcomes must give up (giveUpBy): with the
   * database down, retrying them (up to half a lease per batch) held the stop past Fly's
   * kill_timeout. Unrecorded, their leases expire and are reclaimed. Not at the aborted sends' end:
   * with every answer seconds late, sends accepted then were given up while the stop had time left.
   */
  recordBy: (deadline: number) => void
}): Promise<void> {
  g.recordBy(g.startedAt + g.graceMs + STOP_MARGIN_MS - RECORDING_MARGIN_MS)
  // A delivery never rejects (claim-round catches its failure): a rejection here is the wait's end.
  const all = Promise.all([...g.deliveries])
  const leftMs = Math.max(0, g.startedAt + g.graceMs - monotonicNow(g.clock))
  const finished = await waitAtMost(g.clock, all, leftMs).then(
    () => true,
    () => false,
  )
  if (finished) return
  g.log.warn('shutdown grace over; aborting sends in flight', { inFlight: g.inFlight() })
  g.abort.abort()
  await waitAtMost(g.clock, all, ABORTED_SENDS_WAIT_MS).catch(() => {})
}
