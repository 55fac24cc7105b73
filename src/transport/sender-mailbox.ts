// The configured sender mailbox (MAIL_FROM) as Graph last answered for it: refused (why, since when) or sending; each change logged once.
import type { Logger } from '../log.ts'

/**
 * How logs, readiness and metrics name the mailbox: by the variable that configures it. Its address
 * never enters a log line; the variable is also what the operator fixes.
 */
export const SENDER_MAILBOX_NAME = 'MAIL_FROM'

interface Refusal {
  code: string
  httpStatus: number
  since: number
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
  let refusal: Refusal | null = null
  return {
    isDefault: (address) => key !== '' && address.trim().toLowerCase() === key,
    refused({ code, httpStatus, requestId, retryInMs }) {
      if (refusal && refusal.code === code) {
        refusal.count++
        return
      }
      // A new run, or a new cause (the mailbox created but not yet licensed: 404 → 403): said again.
      refusal = {
        code,
        httpStatus,
        since: refusal?.since ?? d.now(),
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
      if (!refusal) return
      d.log.info('sender mailbox sends again', {
        mailbox: SENDER_MAILBOX_NAME,
        refusals: refusal.count,
        sinceMs: Math.max(0, d.now() - refusal.since),
      })
      refusal = null
    },
    isRefused: () => refusal !== null,
    warning() {
      if (!refusal) return null
      const since = new Date(refusal.since).toISOString()
      return `the sender mailbox ${SENDER_MAILBOX_NAME} is refused by Graph (HTTP ${refusal.httpStatus} ${refusal.code}) since ${since}: rows that name no other sender wait, uncounted, and one is tried again every few minutes; check ${SENDER_MAILBOX_NAME} and that the mailbox exists, is licensed and the app may send from it`
    },
  }
}
