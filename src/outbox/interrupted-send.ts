// resolveAmbiguity: a claimed row whose earlier send was interrupted is looked up in the mailbox, or the policy decides.

import { retryDelayMs } from './backoff.ts'
import type { DeliveryDeps } from './deliver.ts'
import { lookUpInterruptedSend } from './interrupted-lookup.ts'
import { LOOKUP_GRACE_SECONDS, LOOKUP_TOO_EARLY_CODE, lookupGraceLeftMs } from './lookup-grace.ts'
import { EARLIER_SEND_MAY_HAVE_DELIVERED } from './may-have-delivered.ts'
import { afterGivenBack } from './paused-give-back.ts'
import type { Finish, Ready } from './send-attempt.ts'
import { PAUSED_CODE } from './settle-item.ts'

/**
 * An earlier attempt started a send and never learned its outcome. Looks in the mailbox when
 * permitted (the row's sender's, then its past senders': interrupted-lookup.ts); otherwise the
 * policy decides. A "not found" within the lookup grace of the interrupted send (lookup-grace.ts)
 * proves nothing yet: the row waits to be looked up again (`lookup_too_early`). Each wait to look
 * again is a lookupWait: it may run past the row's expiresAt (bounded where it settles), where the
 * row is only looked up. True: send now. False: settled here.
 */
export async function resolveAmbiguity(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
): Promise<boolean> {
  const asked = d.lookup
    ? await lookUpInterruptedSend(d, d.lookup, r)
    : { verdict: 'unavailable' as const, mailbox: r.mail.from.address }
  let verdict = asked.verdict
  if (verdict === 'not_found') {
    // Too soon after the interrupted send, the message may not be filed yet: look again once the
    // grace is out (uncounted, the mark kept), never send on that answer. A grace the database
    // cannot tell now is a lookup that failed: asked again later.
    // The grace runs from the last moment the interrupted request could have reached the provider,
    // its deadline: a send that timed out met a slow Graph, which may file the message later still.
    // The deadline is the one its start noted on the row (the sending process's timeout); not
    // noted, a send made under a longer timeout than this worker's ended no later than its attempt did.
    const leftMs = await lookupGraceLeftMs(
      d.db,
      r.lease,
      d.lookupGraceSeconds ?? LOOKUP_GRACE_SECONDS,
      (d.sendTimeoutMs ?? 0) / 1000,
    ).catch(() => 'error' as const)
    if (leftMs === 'error') verdict = 'error'
    else if (leftMs !== null && leftMs > 0) {
      d.log.info('not in the mailbox yet after an interrupted send; will look again', {
        db: d.dbName,
        outboxId: r.lease.id,
        inMs: Math.round(leftMs),
      })
      await finish(r.lease, {
        kind: 'retry',
        code: LOOKUP_TOO_EARLY_CODE,
        message:
          'an interrupted send was not in the mailbox yet (Graph files a sent message some time after accepting it); will look again',
        delayMs: leftMs,
        throttled: true,
        ambiguous: true,
        lookupWait: true,
      })
      return false
    }
  }
  // A lookup the stop cut off (waiting for a token, or asking) changed nothing: released as any
  // unstarted row on a stop, due at once for another worker, its mark kept. A stop begun cuts off
  // a worker alone's kept wait for a slow token request (lone-token-wait.ts) before the hard
  // abort: the lookup says `stopped`. A failure Graph answered in the stop's grace (a 500, a
  // timeout) is not that: a failed lookup, with its entry and backoff, as at any other time.
  if (verdict === 'stopped' || (verdict === 'error' && d.abort.aborted)) {
    await finish(r.lease, { kind: 'released' })
    return false
  }
  if (verdict === 'not_found') return true
  if (verdict === 'unavailable' && d.ambiguousPolicy === 'resend') {
    r.unverified = true
    return true
  }
  if (typeof verdict === 'object' && 'rejected' in verdict) {
    // The sender mailbox does not exist: a send from it would be refused and fail the row with
    // this code at once, so the lookup does the same rather than ask again until the deadline.
    // The send it looked up stays unresolved: the failure names it (settle-last-error.ts).
    const { code, message, httpStatus, requestId } = verdict.rejected
    await finish(
      r.lease,
      {
        kind: 'failed',
        code,
        message: `the mailbox lookup of an interrupted send was refused: ${message}`,
        ambiguous: true,
        lookupRefused: true,
      },
      { httpStatus, requestId },
    )
  } else if (typeof verdict === 'object' && 'unreachable' in verdict) {
    // The provider could not be asked (no token): the row waits as a send meeting the same would,
    // uncounted, with its code (consecutive token waits are recorded once), its mark kept. Given
    // back due at once (Graph: token_slow), its settlement wakes a worker with a token to take it,
    // as a send's (lease-outcome.ts).
    const outcome = verdict.unreachable
    await finish(
      r.lease,
      {
        kind: 'retry',
        code: outcome.code,
        message: outcome.message,
        delayMs: outcome.afterMs ?? retryDelayMs(r.lease.attempt, d.backoff, d.rng),
        throttled: outcome.throttled === true,
        ambiguous: true,
        lookupWait: true,
      },
      { httpStatus: outcome.httpStatus },
    )
  } else if (typeof verdict === 'object') {
    // Throttled like a send: every worker leaves the mailbox alone, and the row asks again once
    // it may (uncounted), instead of after the first retry delay.
    // So is one refused because the configured sender mailbox is not one (MAIL_FROM wrong): the
    // row keeps Graph's code, which says what to fix, as its send would.
    // A past sender mailbox held back (paused, its probe owed) was not asked: no throttle to note.
    // So is one the mailbox's quota holds (a full mailbox): Graph's code kept, as a send's is.
    const refused = verdict.refused
    const quota = verdict.quota
    if (!asked.held) {
      await d.gate.pause(asked.mailbox, verdict.throttledForMs, refused).catch(() => {})
    }
    await finish(
      r.lease,
      {
        kind: 'retry',
        code: refused?.code ?? quota?.code ?? (asked.held ? PAUSED_CODE : 'lookup_failed'),
        message: refused
          ? `the mailbox lookup of an interrupted send was refused: ${refused.message}; will ask again`
          : quota
            ? `the mailbox lookup of an interrupted send was refused for now: ${quota.message}; will ask again`
            : asked.heldRefused
              ? "the mailbox lookup of an interrupted send waits for a mailbox it may have gone from, refused by Graph: paused; will ask again at the pause's end"
              : asked.held
                ? 'the mailbox lookup of an interrupted send waits for a mailbox it may have gone from, paused by a throttle or its probe owed; will ask again'
                : 'the mailbox lookup of an interrupted send was throttled; will ask again',
        delayMs: verdict.throttledForMs,
        throttled: true,
        ambiguous: true,
        lookupWait: true,
        ...(refused && { mailboxRefused: true }),
      },
      // Graph's status for a throttled lookup too: its history entry and /metrics' cause say it.
      refused
        ? { httpStatus: refused.httpStatus, requestId: refused.requestId }
        : verdict.httpStatus !== undefined
          ? { httpStatus: verdict.httpStatus }
          : {},
    )
    await afterGivenBack(d, r, asked.givenBack)
  } else if (verdict === 'error') {
    // Ask the mailbox again later rather than guess; the attempt is not counted.
    await finish(r.lease, {
      kind: 'retry',
      code: 'lookup_failed',
      message: 'could not look the interrupted send up in the mailbox; will ask again',
      delayMs: retryDelayMs(r.lease.attempt, d.backoff, d.rng),
      throttled: true,
      ambiguous: true,
      lookupWait: true,
    })
  } else if (verdict === 'found') {
    d.log.info('found in the mailbox after an interrupted send; not sending again', {
      db: d.dbName,
      outboxId: r.lease.id,
    })
    await finish(r.lease, { kind: 'sent' })
  } else {
    await finish(r.lease, {
      kind: 'failed',
      code: 'ambiguous_send',
      message: `${EARLIER_SEND_MAY_HAVE_DELIVERED}; held for review (retry it to send)`,
    })
  }
  return false
}
