// The configured sender mailbox (MAIL_FROM) as Graph last answered for it: refused (why, since when) or sending; each change logged once.
import type { Clock } from '../clock.ts'
import { createFailureRun } from '../failure-run.ts'
import type { Logger } from '../log.ts'
import { mailboxKey } from '../outbox/send-gate.ts'

/**
 * How logs, readiness and metrics name the mailbox: by the variable that configures it. Its address
 * never enters a log line; the variable is also what the operator fixes.
 */
export const SENDER_MAILBOX_NAME = 'MAIL_FROM'

/**
 * A refusal not met again for this long is no longer reported. Waiting rows probe the mailbox once
 * per pause (5 minutes), but on whichever worker claims them: once the mailbox works, another
 * machine's send may be the one accepted, and this process would otherwise report it refused for
 * good. With several machines a refusal still standing is met by each every few pauses.
 */
export const SENDER_MAILBOX_STALE_MS = 30 * 60_000

/** One refusal, as its line tells it; its cause is its code. */
interface Refusal {
  code: string
  httpStatus: number
  requestId?: string | undefined
  retryInMs?: number
}

export interface SenderMailbox {
  /** Whether `address` is the configured mailbox (as Graph matches it: case-insensitive). */
  isDefault(address: string): boolean
  /** Graph refused the mailbox itself (graph-outcome.ts refusesMailbox); the first of a run logs at error. */
  refused(r: Refusal): void
  /** Graph accepted a send from it: a run of refusals ends (logged once). */
  accepted(): void
  /** True while the last answer about the mailbox was a refusal. */
  isRefused(): boolean
  /**
   * Why rows of `address` wait, when it is this mailbox and Graph refuses it (its pause is the
   * refusal's, not a throttle's): said in the rows it sends back; null otherwise. `refused`: the
   * pause's cause, read from the database, is a refusal, which another worker may have met: said
   * without Graph's code when this process met none. No address.
   */
  pauseReason(address: string, refused?: boolean): string | null
  /** For readiness: what is wrong and what to fix, without the address; null while it sends. */
  warning(): string | null
}

export function createSenderMailbox(d: {
  /** The address (or Graph user id) MAIL_FROM names; '' when none. */
  address: string
  log: Logger
  /** Wall time for the refusal's start shown; its staleness on the monotonic clock. */
  clock: Pick<Clock, 'now' | 'monotonic'>
}): SenderMailbox {
  // Keyed as the send gate keys a row's sender (its slots, pacing and pauses), one rule for both.
  const key = mailboxKey(d.address)
  const refusals = createFailureRun<Refusal>({
    log: d.log,
    clock: d.clock,
    msg: 'sender mailbox refused by Graph: its rows wait',
    level: 'error',
    // Said once per cause (the mailbox created but not yet licensed: 404 → 403, said again);
    // readiness says it for as long as it stands.
    remindMs: null,
    staleMs: SENDER_MAILBOX_STALE_MS,
    fieldsOf: (r) => ({
      mailbox: SENDER_MAILBOX_NAME,
      code: r.code,
      httpStatus: r.httpStatus,
      requestId: r.requestId,
      retryInMs: r.retryInMs,
    }),
  })
  return {
    isDefault: (address) => key !== '' && mailboxKey(address) === key,
    refused: (r) => refusals.failed(r),
    accepted() {
      const ended = refusals.succeeded()
      if (!ended) return
      d.log.info('sender mailbox sends again', {
        mailbox: SENDER_MAILBOX_NAME,
        refusals: ended.failures,
        sinceMs: Math.max(0, ended.ms),
      })
    },
    isRefused: () => refusals.current() !== null,
    pauseReason(address, refused = false) {
      if (key === '' || mailboxKey(address) !== key) return null
      const refusal = refusals.current()
      if (!refusal && !refused) return null
      const met = refusal ? ` (HTTP ${refusal.logged.httpStatus} ${refusal.logged.code})` : ''
      return `its sender mailbox ${SENDER_MAILBOX_NAME} is refused by Graph${met}: paused, one row tries it again at the pause's end`
    },
    warning() {
      const refusal = refusals.current()
      if (!refusal) return null
      const since = new Date(refusal.since).toISOString()
      return `the sender mailbox ${SENDER_MAILBOX_NAME} is refused by Graph (HTTP ${refusal.logged.httpStatus} ${refusal.logged.code}) since ${since}: rows that name no other sender wait, uncounted, and one is tried again every few minutes; check ${SENDER_MAILBOX_NAME} and that the mailbox exists, is licensed and the app may send from it`
    },
  }
}
