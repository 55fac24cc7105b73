// Graph's answers during the chaos: a seeded mix of sends accepted, throttled, failed, hung or accepted unanswered, and of failed lookups.
import type { FakeGraphFaults, GraphFault } from '../../support/fake-graph.ts'
import { pick } from './random.ts'

export const SEND_FAULTS: Record<string, GraphFault | undefined> = {
  ok: undefined,
  throttled: { status: 429, code: 'ApplicationThrottled', retryAfter: '1' },
  unavailable: { status: 503, code: 'ServiceUnavailable', retryAfter: '1' },
  error: { status: 500, code: 'InternalServerError', message: 'Internal server error' },
  hang: 'hang',
  acceptThenHang: 'accept_then_hang',
  acceptThen504: 'accept_then_504',
  acceptWithRetryAfter: 'accept_with_retry_after',
}
export const SEND_WEIGHTS = {
  ok: 60,
  throttled: 8,
  unavailable: 6,
  error: 5,
  hang: 5,
  acceptThenHang: 7,
  acceptThen504: 4,
  acceptWithRetryAfter: 3,
}

/** CHAOS_HARSH: one send in three accepted with its answer lost (a hang, a 504), more hung. */
export const HARSH_SEND_WEIGHTS: typeof SEND_WEIGHTS = {
  ...SEND_WEIGHTS,
  ok: 45,
  hang: 8,
  acceptThenHang: 16,
  acceptThen504: 10,
}

/** A mailbox answered 429 with its own Retry-After until `until` (Date.now()), by the pause mix. */
export type MailboxThrottles = Map<string, { until: number; retryAfterS: number }>

/**
 * The fake's faults for the chaos, drawn from `r` per request; the harness changes `latencyMs`.
 * A mailbox in `throttles` is answered 429 without a draw (no throttle in the old mixes: their
 * draws stay).
 */
export function chaosGraphAnswers(
  r: () => number,
  weights: typeof SEND_WEIGHTS = SEND_WEIGHTS,
  throttles: MailboxThrottles = new Map(),
): FakeGraphFaults & { latencyMs: number } {
  return {
    latencyMs: 10,
    pickSendMail: (mailbox) => {
      const t = throttles.get(mailbox)
      if (t && Date.now() < t.until)
        return {
          status: 429,
          code: 'ApplicationThrottled',
          message: 'Application is over its MailboxConcurrency limit.',
          retryAfter: String(t.retryAfterS),
        }
      return SEND_FAULTS[pick(r, weights)]
    },
    pickLookup: () => {
      const x = r()
      if (x < 0.08) return { status: 503, code: 'ServiceUnavailable', retryAfter: '1' }
      if (x < 0.12) return { status: 500, code: 'InternalServerError' }
      return undefined
    },
  }
}
