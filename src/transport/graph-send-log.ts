// The log line of one sendMail's outcome: accepted, not accepted, or unanswered (whether Graph has it is not known); ids only.
import type { Logger } from '../log.ts'
import type { OutboundMail, SendOutcome } from '../outbox/sender.ts'
import type { GraphExchange } from './graph-request.ts'

export function logSendOutcome(
  log: Logger,
  mail: OutboundMail,
  outcome: SendOutcome,
  exchange: GraphExchange,
): void {
  const fields = {
    outboxId: mail.outboxId,
    attempt: mail.attempt,
    outcome: outcome.kind,
    code: outcome.kind === 'sent' ? undefined : outcome.code,
    httpStatus: outcome.httpStatus,
    requestId: outcome.requestId,
  }
  if (outcome.kind === 'sent') log.debug('graph sendMail accepted', fields)
  // A wait for Graph or a token: the transport's own run of lines says so, not each row.
  else if ('unsent' in exchange) log.debug('graph sendMail not accepted', fields)
  // No answer from Graph itself (a stop, a deadline, a connection lost, a gateway's 502/504):
  // it may have accepted the message, and the line must not say it did not.
  else if (outcome.kind === 'retry' && maybeAccepted(exchange, outcome))
    log.info('graph sendMail unanswered: whether Graph accepted it is not known', fields)
  else log.info('graph sendMail not accepted', fields)
}

/**
 * Whether Graph may have the message of a retry: an ambiguous one (a gateway's 502/504), or one
 * with no response at all unless it says no request went (the codes `timeout`, `network`,
 * `aborted`: send-verdict.ts judges the row by the same rule).
 */
function maybeAccepted(exchange: object, outcome: { ambiguous?: boolean }): boolean {
  if (outcome.ambiguous !== undefined) return outcome.ambiguous
  return 'failed' in exchange
}
