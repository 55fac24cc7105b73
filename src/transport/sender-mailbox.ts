// The configured sender mailbox (MAIL_FROM) as Graph last answered for it: refused (why, since when) or sending; each change logged once.
import type { Logger } from '../log.ts'

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

interface Refusal {
  code: string
  httpStatus: number
  since: number
  /** When it was last met (SENDER_MAILBOX_STALE_MS counts from there). */
  lastAt: number
  /** Refusals since the run began, the first included. */
  count: number
}

export interface SenderMailbox {
  /** Whether `address` is the configured mailbox (as Graph matches it: case-insensitive). */
  isDefault(address: string): boolean
  /** Graph refused the mailbox itself (graph-outcome.ts refusesMailbox); the first of a run logs at error. */
  refused(r: {
    code: string
    httpStatus: number
    requestId?: string | undefined
    retryInMs?: number
  }): void
  /** Graph accepted a send from it: a run of refusals ends (logged once). */
  accepted(): void
  /** True while the last answer about the mailbox was a refusal. */
  isRefused(): boolean
  /** For readiness: what is wrong and what to fix, without the address; null while it sends. */
  warning(): string | null
}

export function createSenderMailbox(d: {
  /** The address (or Graph user id) MAIL_FROM names; '' when none. */
  address: string
  log: Logger
  now: () => number
}): SenderMailbox {
  const key = d.address.trim().toLowerCase()
  let run: Refusal | null = null
  // The run as it stands: one not met again for SENDER_MAILBOX_STALE_MS has ended, unheard.
  const current = () => (run && d.now() - run.lastAt < SENDER_MAILBOX_STALE_MS ? run : null)
  return {
    isDefault: (address) => key !== '' && address.trim().toLowerCase() === key,
    refused({ code, httpStatus, requestId, retryInMs }) {
      const refusal = current()
      const now = d.now()
      if (refusal && refusal.code === code) {
        refusal.count++
        refusal.lastAt = now
        return
      }
      // A new run, or a new cause (the mailbox created but not yet licensed: 404 → 403): said again.
      run = {
        code,
        httpStatus,
        since: refusal?.since ?? now,
        lastAt: now,
        count: (refusal?.count ?? 0) + 1,
      }
      d.log.error('sender mailbox refused by Graph: its rows wait', {
        mailbox: SENDER_MAILBOX_NAME,
        code,
        httpStatus,
        requestId,
        retryInMs,
      })
    },
    accepted() {
      const refusal = current()
      run = null
      if (!refusal) return
      d.log.info('sender mailbox sends again', {
        mailbox: SENDER_MAILBOX_NAME,
        refusals: refusal.count,
        sinceMs: Math.max(0, d.now() - refusal.since),
      })
    },
    isRefused: () => current() !== null,
    warning() {
      const refusal = current()
      if (!refusal) return null
      const since = new Date(refusal.since).toISOString()
      return `the sender mailbox ${SENDER_MAILBOX_NAME} is refused by Graph (HTTP ${refusal.httpStatus} ${refusal.code}) since ${since}: rows that name no other sender wait, uncounted, and one is tried again every few minutes; check ${SENDER_MAILBOX_NAME} and that the mailbox exists, is licensed and the app may send from it`
    },
  }
}
