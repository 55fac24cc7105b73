// The delivery promise, row by row: nothing lost, duplicates only where the mode allows them, nothing sent late.
import { acceptancesUnexplained, historyLine, interruptedSends } from '../send-counts.ts'
import { type AttemptChecks, checkHistory } from './history-checks.ts'
import type { AttemptEntry, ChaosOutcome } from './outcome.ts'
import type { ChaosRecord } from './record.ts'
import { GRAPH_TIMEOUT_SECONDS, MAX_LATENCY_MS, type Mode } from './settings.ts'

// A send let through just before its expiry or cancel reaches Graph later: the worker sends it
// within its request's deadline, and the fake, which like Graph takes a message whose client has
// gone, accepts it up to its latency after that; a second more for the scheduling of three
// processes on a loaded machine (worker send → acceptance measured up to 1.5 s for answered sends).
// Acceptances within this much of the moment are not late.
const SLACK_MS = GRAPH_TIMEOUT_SECONDS * 1000 + MAX_LATENCY_MS + 1_000

export interface RowFindings {
  /** Acceptances beyond the first, summed over the rows. */
  duplicates: number
  /** The latest acceptance after an expiresAt or an answered cancel (how close SLACK_MS came). */
  lateMs: { expiry: number; cancel: number }
}

/**
 * Adds a problem for each row that breaks the promise (and marks the row offending). `olderPids`:
 * the workers of an older release (CHAOS_OLDER_BINARY), whose claim of a row left pending at its
 * max_attempts for its last attempt's lookup counts one attempt more (deploy/README.md's rolling-deploy
 * note on that lookup): such an entry may be numbered max_attempts + 1, and the row count it; and
 * whose lookup of a send a 504 left in doubt may number it one below that send (checkHistory).
 */
export function checkRows(
  mode: Mode,
  outcome: ChaosOutcome,
  record: ChaosRecord,
  olderPids: ReadonlySet<number> = new Set(),
): RowFindings {
  const { rows, byId, historyOf, accepted, acceptedTimes, sendTimes } = outcome
  const { problems, offending, retriedAt, cancelledAt, expiresAtOf } = record

  // Nothing lost: every id the harness was given exists; every accepted message is one of the rows.
  for (const id of record.known)
    if (!byId.has(id)) problems.push(`row ${id} was enqueued and is gone`)
  for (const id of accepted.keys()) if (!byId.has(id)) problems.push(`accepted ${id}: no such row`)

  let duplicates = 0
  const lateMs = { expiry: Number.NEGATIVE_INFINITY, cancel: Number.NEGATIVE_INFINITY }
  for (const r of rows) {
    const hist = historyOf.get(r.id) ?? []
    const n = accepted.get(r.id) ?? 0
    const retries = retriedAt.get(r.id)?.length ?? 0
    const ambiguous = interruptedSends(hist, sendTimes.get(r.id))
    const say = (what: string) => {
      offending.add(r.id)
      problems.push(
        `row ${r.id} (${r.status}, ${r.last_error_code ?? '-'}, attempts ${r.attempts}/${r.max_attempts}, accepted ${n}x, retried ${retries}x): ${what}\n    history: ${historyLine(hist)}`,
      )
    }
    if (!['sent', 'failed', 'cancelled'].includes(r.status)) say('not in a final state')
    if (r.lease_owner || r.lease_token || r.lease_expires_at) say('lease left on a finished row')
    const olderPast = (h: AttemptEntry) =>
      h.attempt === r.max_attempts + 1 && olderPids.has(Number(h.worker_id?.split(':')[1]))
    const allowed = r.max_attempts + (hist.some(olderPast) ? 1 : 0)
    if (r.attempts > allowed) say('more attempts than allowed')
    if (hist.some((h) => h.attempt > r.max_attempts && !olderPast(h)))
      say('an attempt numbered past max_attempts')

    // Duplicates: only where the promise allows them.
    if (n > 1) {
      duplicates += n - 1
      if (mode === 'lookup') say('sent twice although the mailbox lookup was on')
      else if (mode === 'hold') {
        const held = hist.filter((h) => h.error_code === 'ambiguous_send').length
        if (n - 1 > Math.min(held, retries)) say('sent again without a retry of a held row')
      } else if (n - 1 > ambiguous) say('sent more often than its interrupted sends explain')
    }
    // Every acceptance is a sent row's own send, or a send that was interrupted: a row not sent was
    // accepted once per interrupted send at most.
    if (r.status !== 'sent' && acceptancesUnexplained(n, ambiguous, false) > 0)
      say(
        ambiguous === 0
          ? 'accepted by Graph, not marked sent'
          : `accepted by Graph, not marked sent, more often than its ${ambiguous} interrupted sends`,
      )
    if (r.status === 'sent' && n === 0) say('marked sent and never accepted by Graph')
    if (r.rejected && (n > 0 || r.status === 'sent')) say('a rejected recipient was sent')
    // With the lookup on, a failed row that may have been delivered keeps the mark, so a retry looks first.
    if (mode === 'lookup' && n > 0 && r.status === 'failed' && r.send_started_at === null) {
      if (!/may have delivered/.test(r.last_error ?? ''))
        say('failed without the mark of its delivered send')
    }

    const row: AttemptChecks = {
      r,
      hist,
      retries,
      cancelAsked: record.cancelAsked.has(r.id),
      say,
      olderPids,
    }
    checkHistory(mode, row)

    // Never sent after its expiry, nor after a cancel that answered yes (unless retried after it).
    const times = acceptedTimes.get(r.id) ?? []
    const expires = r.expires_at?.getTime() ?? expiresAtOf.get(r.id)
    for (const t of times)
      if (expires !== undefined) lateMs.expiry = Math.max(lateMs.expiry, t - expires)
    if (expires !== undefined && times.some((t) => t > expires + SLACK_MS))
      say('accepted after its expiresAt')
    const cancelled = cancelledAt.get(r.id)
    if (cancelled !== undefined) {
      const retriedAfter = (retriedAt.get(r.id) ?? []).some((t) => t > cancelled)
      if (!retriedAfter)
        for (const t of times) lateMs.cancel = Math.max(lateMs.cancel, t - cancelled)
      if (!retriedAfter && times.some((t) => t > cancelled + SLACK_MS))
        say('accepted after its cancel was answered')
    }
  }
  return { duplicates, lateMs }
}
