// An interrupted earlier send on a row claimed past its expiresAt or its max_attempts: looked up, never sent again; sent when the mailbox has it, else expired or exhausted.
import { resolveCancelled } from './cancelled-interrupted.ts'
import type { DeliveryDeps } from './deliver.ts'
import { resolveAmbiguity } from './interrupted-send.ts'
import type { Finish, Ready } from './send-attempt.ts'

/**
 * resolveAmbiguity for any claimed row with an interrupted earlier send; true: send now. A row
 * with its cancel requested is never sent (cancelled-interrupted.ts). A row past
 * its expiresAt is never sent: its lookup only says whether the interrupted send went (settled
 * `sent`, so an operator knows it did) or, not found past the lookup grace, did not (expired as not
 * sent, its mark cleared). Anything else (too early to tell, refused, unavailable) fails it expired
 * with the mark kept and named, as before a lookup. A row claimed past its max_attempts (its last
 * attempt's send interrupted, lookups on) is never sent either: found, it is sent; not found past
 * the grace, failed out of attempts, the mark cleared; unverified, failed so with the mark kept;
 * too early or held back, it waits (uncounted) to be looked up again (pastAttempts).
 */
export async function resolveInterrupted(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
): Promise<boolean> {
  // Its cancel requested: never sent either (past its expiresAt too: cancelled, or sent if found).
  if (r.lease.cancelRequested) return resolveCancelled(d, r, finish)
  if (!r.lease.expired && !r.lease.pastAttempts) return resolveAmbiguity(d, r, finish)
  // Whatever holds it back instead fails it expired where it settles (pastExpiry, recordOutcome).
  if (await resolveAmbiguity(d, r, finish)) {
    const kind = r.lease.expired ? 'expired' : 'exhausted'
    await finish(r.lease, r.unverified ? { kind } : { kind, notSent: true })
  }
  return false
}
