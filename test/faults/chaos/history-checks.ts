// A finished row's attempt history: it agrees with the row, numbers its counted attempts, and explains the row's final state.
import type { AttemptEntry, OutboxRow } from './outcome.ts'
import type { Mode } from './settings.ts'

const FINAL = new Set(['sent', 'failed', 'expired', 'cancelled'])

/** One row with its history, as the row checks see it; `say` records a problem with the row. */
export interface AttemptChecks {
  r: OutboxRow
  hist: AttemptEntry[]
  /** Retries through the API that answered 200. */
  retries: number
  cancelAsked: boolean
  say(what: string): void
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

/**
 * The entry at `i` records a lookup of an interrupted send that counted no attempt (lease.ts:
 * lookupOnly): the row's last attempt's, any attempt's once the row's cancel was asked, or any
 * attempt's past the row's expiresAt (looked up, or named unlooked; a sweep's end of such a row too).
 */
function lookedUp(
  hist: readonly AttemptEntry[],
  i: number,
  r: OutboxRow,
  cancelAsked: boolean,
): boolean {
  const h = hist[i]!
  // Its lookup's worker stopped: reclaimed, looked up again (reclaim.ts). Past its expiresAt too
  // (a last attempt's next try that would come after it waits to be looked up there): expired.
  const last =
    h.attempt === r.max_attempts &&
    ['sent', 'failed', 'lease_expired', 'expired'].includes(h.outcome)
  // Its cancel asked while it waited pending: sent if found, else cancelled (cancelled-interrupted.ts).
  const cancelling = cancelAsked && ['sent', 'cancelled', 'lease_expired'].includes(h.outcome)
  // Past its expiresAt: sent if found, else expired (expired-interrupted.ts, expiry-sweep.ts). An
  // interrupted send its claim gave back (a 504: throttled, uncounted) on a row with no counted
  // attempt yet is looked up as attempt 0.
  const pastExpiry = r.expires_at !== null && ['sent', 'expired'].includes(h.outcome)
  if (pastExpiry && h.attempt === 0) return true
  if (!last && !cancelling && !pastExpiry) return false
  return hist.slice(0, i).some(
    (e) =>
      (e.attempt === h.attempt &&
        (e.outcome === 'retry' ||
          (e.outcome === 'lease_expired' && /during the send/.test(e.error ?? '')))) ||
      // A send a gateway's 504 left in doubt is given back uncounted (a throttle): the lookup's
      // entry numbers the row's attempts, which that send's give-back left one below its own.
      (cancelling && e.attempt === h.attempt + 1 && e.http_status === 504 && refunded(e)),
  )
}

export function checkHistory(mode: Mode, { r, hist, retries, cancelAsked, say }: AttemptChecks) {
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
  if (r.status !== 'pending' && last && !refunded(last) && last.attempt !== r.attempts)
    say('the last history entry names another attempt than the row')
  // Each counted claim leaves one entry, numbered 1, 2, …; throttles and releases give theirs
  // back, and a cancel through the API (no worker) counts none. (A retry restarts the count.)
  if (retries === 0) {
    // With lookups on, a last attempt whose send was interrupted is looked up before the row
    // fails: the lookup's outcome (sent, failed out of attempts, or expired) is numbered as that
    // attempt; so is the lookup of any attempt's interrupted send whose row's cancel was asked.
    const counted = hist
      .filter((h, i) => h.worker_id !== null && !refunded(h) && !lookedUp(hist, i, r, cancelAsked))
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
