// During a stop, the rows given back are recorded once the worker's claim under way has answered: recorded before it, the claim took them again.
import type { Logger } from '../log.ts'
import type { SettleQueue } from './settle-queue.ts'

/** Logged (debug) once a stop's give-back waits for the claim under way. */
export const GIVE_BACKS_WAIT_FOR_CLAIM =
  'stopping: the rows given back are recorded once the claim under way has answered'

export interface ClaimBeforeGiveBack {
  /** A claim round (its claim statements) is under way until `round` settles. */
  track<T>(round: Promise<T>): Promise<T>
  /**
   * `settle`, but an outcome pushed once the stop began, while a claim round is under way, is
   * written after that round (a send's is not: a sent row is no claim's to take).
   */
  settle(settle: SettleQueue): SettleQueue
}

/**
 * A claim the loop began before the stop may run its statement after a row the stop gave back
 * (due at once, its lease ended) is written: it takes that row again, and the stop gives it back
 * a second time, which its history said ("released" twice), the claim's count given back with it.
 * Invariant: during a stop, no row this worker gives back is written before its claim under way
 * has answered. The wait is that claim's own: the stop waits for the loop to end anyway.
 */
export function createClaimBeforeGiveBack(stopping: AbortSignal, log: Logger): ClaimBeforeGiveBack {
  let underWay: Promise<unknown> | null = null
  let told = false
  return {
    track(round) {
      const over = round.then(
        () => {},
        () => {},
      )
      underWay = over
      void over.then(() => {
        if (underWay === over) underWay = null
      })
      return round
    },
    settle: (settle) => ({
      ...settle,
      push(item) {
        const claim = underWay
        if (claim === null || !stopping.aborted || item.settlement.kind === 'sent') {
          return settle.push(item)
        }
        if (!told) {
          told = true
          log.debug(GIVE_BACKS_WAIT_FOR_CLAIM)
        }
        return claim.then(() => settle.push(item))
      },
    }),
  }
}
