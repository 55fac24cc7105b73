// One provider request of a row whose send is recorded as started, and the settlement its outcome calls for.
import { monotonicNow } from '../clock.ts'
import { retryDelayMs } from './backoff.ts'
import type { DeliveryDeps } from './deliver.ts'
import type { Ready, SendExtra } from './send-attempt.ts'
import type { SendOutcome } from './sender.ts'
import type { Settlement } from './settle-item.ts'

// Outcomes after which the provider may or may not have the message, unless the outcome says.
export const AMBIGUOUS_CODES = new Set(['timeout', 'network', 'aborted'])

/**
 * Sends `r.mail` once (a transport that throws counts as a network failure of unknown effect) and
 * judges the outcome: sent, failed, or a retry (its delay, whether it was a throttle, whether the
 * provider may have the message); a throttle that pauses the mailbox pauses it at `pauseOnThrottle`.
 * A stop before any request was made releases the row. `checkAskedAt`: the monotonic reading
 * taken before its last check was asked, which the transport's deadline runs from.
 */
export async function sendOne(
  d: DeliveryDeps,
  r: Ready,
  pauseOnThrottle: string | null,
  checkAskedAt?: number,
): Promise<{ settlement: Settlement; extra: Partial<SendExtra> }> {
  const startedAt = new Date(d.clock.now())
  const t0 = performance.now()
  const spentMs = checkAskedAt === undefined ? undefined : monotonicNow(d.clock) - checkAskedAt
  let outcome: SendOutcome
  try {
    outcome = await d.sender.send(r.mail, d.abort, spentMs, d.keptForTokenInSend)
  } catch (err) {
    // A transport must not throw; if one does, treat it as a transient failure of unknown effect.
    d.log.error('transport threw', { db: d.dbName, outboxId: r.lease.id, err })
    outcome = { kind: 'retry', code: d.abort.aborted ? 'aborted' : 'network', message: String(err) }
  }
  const extra = {
    startedAt,
    durationMs: performance.now() - t0,
    httpStatus: outcome.httpStatus,
    requestId: outcome.requestId,
  }
  // The stop came before any request (Graph: while it waited for a token; `ambiguous: false` says
  // none was made): nothing happened to the row, released as any unstarted one on a stop.
  if (outcome.kind === 'retry' && outcome.code === 'aborted' && outcome.ambiguous === false) {
    return { settlement: { kind: 'released' }, extra: {} }
  }
  if (outcome.kind === 'sent') return { settlement: { kind: 'sent' }, extra }
  if (outcome.kind === 'reject') {
    // A refused resend delivered nothing, but says nothing of the interrupted send it stood in
    // for: unverified, that mark stays for a retry to look it up, and the failure names that send.
    const settlement: Settlement = {
      kind: 'failed',
      code: outcome.code,
      message: outcome.message,
      ...(r.unverified === true && { ambiguous: true, resentUnverified: true }),
    }
    return { settlement, extra }
  }
  const throttled = outcome.throttled === true
  if (throttled && pauseOnThrottle && outcome.afterMs && outcome.pausesMailbox !== false) {
    const refused = outcome.refusesMailbox
      ? { code: outcome.code, httpStatus: outcome.httpStatus }
      : undefined
    await d.gate.pause(pauseOnThrottle, outcome.afterMs, refused).catch(() => {})
  }
  const delayMs = outcome.afterMs ?? retryDelayMs(r.lease.attempt, d.backoff, d.rng)
  const sendAmbiguous = outcome.ambiguous ?? (AMBIGUOUS_CODES.has(outcome.code) || d.abort.aborted)
  const ambiguous = r.unverified === true || sendAmbiguous
  const settlement: Settlement = {
    kind: 'retry',
    code: outcome.code,
    message: outcome.message,
    delayMs,
    throttled,
    ambiguous,
    ...(outcome.refusesMailbox === true && { mailboxRefused: true }),
    ...(ambiguous && d.lookup !== null && { lookUpFirst: true }),
    ...(r.unverified === true && { resentUnverified: { sendAmbiguous } }),
  }
  return { settlement, extra }
}
