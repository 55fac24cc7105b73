// A claimed row whose cancel was requested, never sent: cancelled as claimed, or, an earlier send of it interrupted, that send looked up; sent when the mailbox has it, else cancelled.
import { CANCELLED_UNLOOKED } from './cancel-wins.ts'
import type { Lease } from './claim.ts'
import type { DeliveryDeps } from './deliver.ts'
import { resolveAmbiguity } from './interrupted-send.ts'
import type { Finish, Ready } from './send-attempt.ts'
import type { Settlement } from './settle-item.ts'

const SENT_BEFORE_CANCEL =
  'sent by an earlier send that was interrupted (found in the mailbox): the cancel came after the message was delivered'
const NOT_SENT: Settlement = {
  kind: 'cancelled',
  message: 'cancelled; an interrupted send was looked up in the mailbox and not found: not sent',
}
// Its last_error is cancel-wins.ts' CANCELLED_UNRESOLVED; the mark is kept for a retry to look it up.
const UNRESOLVED: Settlement = { kind: 'cancelled', ambiguous: true }

/**
 * A claimed row whose cancel was requested, settled as claimed, with no lookup: cancelled before
 * its send (none started), or, its earlier send interrupted and lookups off, cancelled with that
 * send unresolved, its mark kept. Null: not cancelled, or its interrupted send is to be looked up
 * (resolveCancelled, once rendered).
 */
export function cancelledAsClaimed(lease: Lease, lookups: boolean): Settlement | null {
  if (!lease.cancelRequested) return null
  if (!lease.ambiguous) return { kind: 'cancelled' }
  return lookups ? null : { kind: 'cancelled', message: CANCELLED_UNLOOKED, ambiguous: true }
}

/**
 * What resolveAmbiguity settled, for a row whose cancel is requested: found, it is sent (the cancel
 * came too late); a wait to look again (too early, throttled, no token, the mailbox paused) or a
 * release stands, the row kept pending with its cancel (settle.ts: `look_again`), unless its
 * expiresAt has come (pastExpiry would fail it expired); anything else (the lookup unavailable or
 * refused, the hold policy's review) cancels it, delivery unknown.
 */
function afterCancel(s: Settlement, expired: boolean): Settlement {
  if (s.kind === 'sent') return { kind: 'sent', message: SENT_BEFORE_CANCEL }
  if (s.kind === 'released' || s.kind === 'cancelled') return s
  if (s.kind === 'retry' && s.throttled && !expired) return s
  return UNRESOLVED
}

/**
 * resolveAmbiguity for a row claimed with its cancel requested (the API's 202 for a pending row
 * with an interrupted send's mark): never sent, whatever the lookup says. Not found past the
 * lookup grace: cancelled as not sent, the mark cleared; unverified (no lookup, policy resend):
 * cancelled, delivery unknown.
 */
export async function resolveCancelled(d: DeliveryDeps, r: Ready, finish: Finish): Promise<false> {
  const settle: Finish = (lease, s, extra) => finish(lease, afterCancel(s, lease.expired), extra)
  if (await resolveAmbiguity(d, r, settle))
    await finish(r.lease, r.unverified ? UNRESOLVED : NOT_SENT)
  return false
}
