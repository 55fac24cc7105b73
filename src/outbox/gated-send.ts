// One row's send through a gate that waits (Graph's shared limits): permit, lookup, last check, send.
import type { DeliveryDeps } from './deliver.ts'
import { resolveInterrupted } from './expired-interrupted.ts'
import { giveBackPaused } from './paused-give-back.ts'
import { permitInHand } from './permit-in-hand.ts'
import { type Finish, type Ready, sendInSlot } from './send-attempt.ts'
import type { SendGate } from './send-gate.ts'

/**
 * Waits for the gate (pacing, pauses, a provider slot), resolves an interrupted earlier send (one
 * the hold policy decides, before all that), then sends through the last check; a long pause or a
 * reserved pacing turn sends the row back uncounted instead of holding the worker's place. Never
 * throws.
 */
export async function sendThroughGate(d: DeliveryDeps, r: Ready, finish: Finish): Promise<void> {
  // Held for an operator (lookups off, AMBIGUOUS_SEND_POLICY=hold): a decision that asks the
  // provider nothing waits for neither its token nor a permit, as it does not on an open gate
  // (deliver.ts), so an Entra outage or a paused mailbox cannot hold such a row back, named by the
  // token's code until it fails `throttled` or `expired`. A stop under way changes nothing of it.
  if (r.lease.ambiguous && d.lookup === null && d.ambiguousPolicy === 'hold') {
    await resolveInterrupted(d, r, finish)
    return
  }
  const mailbox = r.mail.from.address
  // A mailbox lookup is a provider request too: it must not go to a paused mailbox, so the gate
  // reads the pause before it even when it would leave that to the last check.
  let readPause = r.lease.ambiguous
  let resolved = !r.lease.ambiguous
  for (;;) {
    // Given back before its interrupted send is looked up (lookups on), the row's wait is one to
    // look it up: it may run past the expiresAt, where the row is only looked up (settle.ts).
    const lookupWait = !resolved && d.lookup !== null
    // The provider's answer first (a token), then the pacing turn: a row a refused credential
    // holds goes back named by the refusal, not for a turn it could not use (sender.ts, ready).
    await d.sender.ready?.(d.stopping)
    if (await givenBackUnsendable(d, r, finish, lookupWait)) return
    let permit: Awaited<ReturnType<SendGate['acquire']>>
    try {
      permit = await d.gate.acquire(mailbox, d.stopping, readPause, r.lease.id)
    } catch (err) {
      // The limits live in the database: unreachable now, so give the row back untouched.
      d.log.warn('could not take a send permit; releasing the row', { db: d.dbName, err })
      permit = null
    }
    if (!permit) return finish(r.lease, { kind: 'released' })
    if ('pausedForMs' in permit) return giveBackPaused(d, r, finish, permit, lookupWait)
    // Given back as soon as the provider request is over (before its settlement), and while the
    // row waits without sending (a heartbeat's answer: slot-once-confirmed.ts).
    const inHand = permitInHand(d, r, finish, permit)
    // A row settled under the permit gives it back first: its settlement may wait (another
    // transaction holding the row locked, its database away) and the permit is every worker's.
    const settle: Finish = (lease, s, extra) => {
      inHand.release()
      return finish(lease, s, extra)
    }
    try {
      // The provider became unreachable while the row waited for its permit (the token request
      // of the rows ahead failed): no lookup, no last check.
      if (await givenBackUnsendable(d, r, settle, lookupWait)) return
      // The lookup is a provider request too: it runs under the same permit as a send.
      if (!resolved && !(await resolveInterrupted(d, r, settle))) return
      resolved = true
      await sendInSlot(d, r, settle, { lastCheck: true, pauseOnThrottle: mailbox, permit: inHand })
    } finally {
      inHand.release()
    }
    if (r.pausedForMs === undefined) return
    // The last check found the mailbox paused (its slots given back meanwhile): the gate now
    // waits a brief pause out or answers a long one, as it does for a paced mailbox.
    r.pausedForMs = undefined
    readPause = true
  }
}

/**
 * While no send can reach the provider (Graph: the token backoff after a failure), the row goes
 * back at once with the outcome a send would get, uncounted like it, its interrupted send's mark
 * kept: no provider slot, lookup or last check (which marks a send started, to be undone by the
 * settlement), so an outage costs each row it meets its claim and its settlement only.
 */
async function givenBackUnsendable(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  lookupWait: boolean,
): Promise<boolean> {
  // Stopping, the row is released as any unstarted one: due now, for a worker that may have a token.
  if (d.stopping.aborted) return false
  const outcome = d.sender.unavailable?.()
  if (outcome?.kind !== 'retry') return false
  // Due at once (a slow token request) with no other worker to take it: kept, its request waited out.
  if (outcome.afterMs === 0 && (await d.keptForToken?.())) return false
  await finish(
    r.lease,
    {
      kind: 'retry',
      code: outcome.code,
      message: outcome.message,
      delayMs: outcome.afterMs ?? 0,
      throttled: outcome.throttled === true,
      ambiguous: r.lease.ambiguous,
      ...(lookupWait && { lookupWait: true }),
    },
    { httpStatus: outcome.httpStatus },
  )
  // Due at once (Graph: this worker's token request is slow): its settlement wakes a worker with a
  // token to take it (lease-outcome.ts).
  return true
}
