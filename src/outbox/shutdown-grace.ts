// The shutdown grace: sends in flight may finish within it; past it they are aborted (each left retryable) and briefly waited for.
import type { Clock } from '../clock.ts'
import type { Logger } from '../log.ts'

/** At most this long for the aborted sends to settle: a send that ignores its abort does not hold the stop. */
const ABORTED_SENDS_WAIT_MS = 5_000

/**
 * Resolves when every delivery has finished, or `graceMs` after the call: then `abort` is fired (the
 * sends still running end, marked ambiguous) and the deliveries are waited for a little more.
 */
export async function finishWithinGrace(g: {
  deliveries: ReadonlySet<Promise<void>>
  graceMs: number
  clock: Clock
  abort: AbortController
  log: Logger
  /** The sends in flight, as logged when the grace is over. */
  inFlight: () => number
}): Promise<void> {
  const all = Promise.all([...g.deliveries])
  const finished = await Promise.race([
    all.then(() => true),
    g.clock.sleep(g.graceMs).then(() => false),
  ])
  if (finished) return
  g.log.warn('shutdown grace over; aborting sends in flight', { inFlight: g.inFlight() })
  g.abort.abort()
  await Promise.race([all, g.clock.sleep(ABORTED_SENDS_WAIT_MS)])
}
