// Naming the rows MAIL_FROM's pause holds back from the claims: one pass per pause, then the rows enqueued since.
import type { Logger } from '../log.ts'
import type { DefaultSenderPause } from './default-sender-pause.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import { PAUSED_CODE, pausedRowMessage } from './settle-item.ts'
import type { SideStatements } from './side-statements.ts'
import { createWaitingMarks } from './waiting-marks.ts'

/** A refusal of MAIL_FROM's, for a transport that words none (file, discard never pause). */
const MAIL_FROM_REFUSED =
  "its sender mailbox is refused by Graph: paused, one row tries it again at the pause's end"

export function createPausedRowNaming(
  d: DrainerDeps,
  pause: DefaultSenderPause,
  stopping: AbortSignal,
  log: Logger,
  besides: SideStatements,
) {
  // MAIL_FROM's rows the claims leave out are told why they wait, as a row given back for the
  // pause is: by one pass per pause, begun by the first claim that finds it standing, then the
  // rows enqueued since at each such claim (at most one naming at a time: a claim's call while one
  // runs comes after it); not awaited, so a claim's rows are not held for it, and a failure leaves
  // the rows as they were. The worker's stop waits for it (`besides`); none begins once stopping.
  const pausedMarks = createWaitingMarks(d.db)
  let naming: 'idle' | 'running' | 'again' = 'idle'
  function namePausedRows(key: string) {
    if (stopping.aborted) return
    if (naming !== 'idle') {
      naming = 'again'
      return
    }
    naming = 'running'
    // The words by the pause's cause, read where the rows are named: a refusal another worker
    // met is told as one (the transport's words for MAIL_FROM, Graph's code where it met it).
    const cause = {
      code: PAUSED_CODE,
      message: pausedRowMessage(d.sender.pauseReason?.(key) ?? null),
      refusedMessage: pausedRowMessage(d.sender.pauseReason?.(key, true) ?? MAIL_FROM_REFUSED),
      mailFromKey: key,
    }
    const name = async () => {
      let marked = await pausedMarks.mark(cause, pausedMarks.passing() ? 'pass' : 'new')
      // The pause's pass to its end at once, a bounded statement at a time, while it stands: a
      // claim may not come again before the pause ends (an idle worker claims only when woken).
      while (pausedMarks.passing() && pause.claimParam() !== undefined && !stopping.aborted)
        marked += await pausedMarks.mark(cause, 'pass')
      return marked
    }
    void besides.track(
      name()
        .then((marked) => {
          if (marked > 0) log.debug('rows waiting for MAIL_FROM’s pause named', { marked })
        })
        .catch((err) => log.warn('could not name the rows MAIL_FROM’s pause holds', { err }))
        .finally(() => {
          const again = naming === 'again'
          naming = 'idle'
          if (again && pause.claimParam() !== undefined) namePausedRows(key)
        }),
    )
  }
  return { namePausedRows, pausedMarks }
}
