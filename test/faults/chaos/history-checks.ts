// A finished row's attempt history: it agrees with the row, numbers its counted attempts, and explains the row's final state.
import type { AttemptEntry, OutboxRow } from './outcome.ts'
import type { Mode } from './settings.ts'
import { stoppedEndingAttempt } from './worker-stops.ts'

const FINAL = new Set(['sent', 'failed', 'expired', 'cancelled'])

/** One row with its history, as the row checks see it; `say` records a problem with the row. */
export interface AttemptChecks {
  r: OutboxRow
  hist: AttemptEntry[]
  /** Retries through the API that answered 200. */
  retries: number
  cancelAsked: boolean
  say(what: string): void
  /**
   * The workers of an older release (CHAOS_OLDER_BINARY), by pid: theirs may number a lookup of a
   * send a 504 left in doubt (given back uncounted) as the row's attempts, one below that send's.
   */
  olderPids?: ReadonlySet<number>
}

// A throttled row that fails (its expiresAt reached) gives its attempt back, as a throttle does;
// so does one whose interrupted send was to be looked up again past its expiresAt.
const throttledUntilExpiry = (error: string | null) =>
  /^(still throttled at its expiresAt|expiresAt comes before its interrupted send can be looked up again)/.test(
    error ?? '',
  )
const refunded = (h: AttemptEntry) =>
  ['throttled', 'released'].includes(h.outcome) ||
  h.error_code === 'throttled' ||
  (h.error_code === 'expired' && throttledUntilExpiry(h.error))

/** A send a gateway's 504 left in doubt, given back uncounted (a throttle) with its mark kept. */
const gatewayTimeout = (e: AttemptEntry) => e.http_status === 504 && refunded(e)

/** The entry was written by a worker of an older release (AttemptChecks olderPids). */
const byOlder = (h: AttemptEntry, olderPids: ReadonlySet<number>) =>
  olderPids.has(Number(h.worker_id?.split(':')[1]))

/**
 * The entry at `i` numbers a send a 504 left in doubt: one above the row's attempts, as that
 * send's own entry (its give-back left the count below it).
 */
const namesGivenBack = (hist: readonly AttemptEntry[], i: number, r: OutboxRow) =>
  hist[i]!.attempt === r.attempts + 1 &&
  hist.slice(0, i).some((e) => e.attempt === hist[i]!.attempt && gatewayTimeout(e))

/**
 * The entry at `i` records a lookup of an interrupted send that counted no attempt (lease.ts:
 * lookupOnly): the row's last attempt's, any attempt's once the row's cancel was asked, or any
 * attempt's past the row's expiresAt (looked up, or named unlooked; a sweep's end of such a row
 * too; the reclaim of one whose worker stopped).
 * It numbers the attempt whose send it looks up (looked-up-attempt.ts), a 504's given back too:
 * one above the row's attempts.
 */
function lookedUp(
  hist: readonly AttemptEntry[],
  i: number,
  r: OutboxRow,
  cancelAsked: boolean,
  olderPids: ReadonlySet<number>,
): boolean {
  const h = hist[i]!
  // Its lookup's worker stopped: reclaimed, looked up again (reclaim.ts). Past its expiresAt too
  // (a last attempt's next try that would come after it waits to be looked up there): expired.
  const last =
    h.attempt === r.max_attempts &&
    ['sent', 'failed', 'lease_expired', 'expired'].includes(h.outcome)
  // Its cancel asked while it waited pending: sent if found, else cancelled (cancelled-interrupted.ts).
  const cancelling = cancelAsked && ['sent', 'cancelled', 'lease_expired'].includes(h.outcome)
  // Past its expiresAt: sent if found, else expired (expired-interrupted.ts, expiry-sweep.ts);
  // its worker stopped: reclaimed (lease_expired), looked up again, or ended expired at the third
  // stop (reclaim.ts: the claim noted its kind, sql/0162).
  const pastExpiry =
    r.expires_at !== null && ['sent', 'expired', 'lease_expired'].includes(h.outcome)
  if (!last && !cancelling && !pastExpiry) return false
  // An older release's worker numbers the lookup of a send a 504 left in doubt as the row's
  // attempts, one below that send's entry (0 for a row with no counted attempt).
  const older = byOlder(h, olderPids)
  if (older && pastExpiry && h.attempt === 0) return true
  // A 504's own attempt, which no counted claim followed (one claim after it is numbered so too).
  if (namesGivenBack(hist, i, r)) return true
  // An earlier entry of its number ends that attempt: its send's (a retry, a stop during it), or
  // the stop of its counted claim's worker before it sent, the row still marked by an earlier
  // send: while it looked that send up (lookups on) or, lookups off, before it sent again
  // (held or resent). The product numbers what follows such a stop as the row's count, that
  // claim's, in both (worker-stops.ts: by the entry's kind, an older release's by its words).
  return hist
    .slice(0, i)
    .some(
      (e) =>
        (e.attempt === h.attempt && (e.outcome === 'retry' || stoppedEndingAttempt(e))) ||
        (older && cancelling && e.attempt === h.attempt + 1 && gatewayTimeout(e)),
    )
}

export function checkHistory(
  mode: Mode,
  { r, hist, retries, cancelAsked, say, olderPids = new Set() }: AttemptChecks,
) {
  // The history agrees with the row.
  const sentEntries = hist.filter((h) => h.outcome === 'sent').length
  if (r.status === 'sent' && (sentEntries !== 1 || hist.at(-1)?.outcome !== 'sent'))
    say('sent, but its history does not end with its one sent attempt')
  if (r.status !== 'sent' && sentEntries > 0) say(`${r.status}, yet its history says sent`)
  const last = hist.at(-1)
  if (
    r.status === 'failed' &&
    !['failed', 'expired', 'lease_expired'].includes(last?.outcome ?? '')
  )
    say('failed, but its history does not end with a failure')
  if (r.status === 'cancelled' && last?.outcome !== 'cancelled')
    say('cancelled, but its history does not end with the cancel')
  // A lookup of a send a 504 left in doubt numbers that send's attempt, one above the row's.
  const lastNamesGivenBack =
    last !== undefined &&
    namesGivenBack(hist, hist.length - 1, r) &&
    lookedUp(hist, hist.length - 1, r, cancelAsked, olderPids)
  if (
    r.status !== 'pending' &&
    last &&
    !refunded(last) &&
    last.attempt !== r.attempts &&
    !lastNamesGivenBack
  )
    say('the last history entry names another attempt than the row')
  // Each counted claim leaves one entry, numbered 1, 2, …; throttles and releases give theirs
  // back, and a cancel through the API (no worker) counts none. (A retry restarts the count.)
  if (retries === 0) {
    // With lookups on, a last attempt whose send was interrupted is looked up before the row
    // fails: the lookup's outcome (sent, failed out of attempts, or expired) is numbered as that
    // attempt; so is the lookup of any attempt's interrupted send whose row's cancel was asked.
    const counted = hist
      .filter(
        (h, i) =>
          h.worker_id !== null && !refunded(h) && !lookedUp(hist, i, r, cancelAsked, olderPids),
      )
      .map((h) => h.attempt)
    if (counted.join(',') !== Array.from({ length: r.attempts }, (_, i) => i + 1).join(','))
      say(`counted attempts ${counted.join(',') || 'none'} do not number 1..${r.attempts}`)
  }
  const finals = hist.filter((h) => FINAL.has(h.outcome)).length
  if (finals > 1 + retries) say('attempts recorded after a final state')

  // Final states the harness can explain.
  if (r.status === 'cancelled' && !cancelAsked) say('cancelled, and nobody asked')
  if (r.status === 'failed') {
    const code = r.last_error_code ?? ''
    const ok =
      (code === 'expired' && r.expires_at !== null && r.expires_at.getTime() <= Date.now()) ||
      // Throttled until its expiresAt: failed (code expired) when its next turn fell after it.
      (code === 'expired' && r.expires_at !== null && throttledUntilExpiry(r.last_error)) ||
      (code === 'ErrorInvalidRecipients' && r.rejected) ||
      (code === 'ambiguous_send' && mode === 'hold') ||
      (code === 'lease_expired' && r.attempts >= r.max_attempts) ||
      (r.attempts >= r.max_attempts && /^attempts exhausted/.test(r.last_error ?? ''))
    if (!ok) say('failed for a reason its attempts do not explain')
  }
}
