// The production Sender: POST /users/{from}/sendMail with an app-only token, plus the mailbox lookup.
import type { Clock } from '../clock.ts'
import type { GraphConfig } from '../config/graph-settings.ts'
import type { Logger } from '../log.ts'
import type { LookupResult } from '../outbox/mailbox-lookup.ts'
import type { OutboundMail, Sender, SendOutcome } from '../outbox/sender.ts'
import { createMailboxLookup } from './graph-lookup.ts'
import { buildSendMailBody, checkSendable } from './graph-message.ts'
import { classifySendResponse } from './graph-outcome.ts'
import { createGraphRequest, noTokenOutcome } from './graph-request.ts'
import type { TokenSource } from './graph-token.ts'

export interface GraphSender extends Sender {
  /** Whether a message tagged with `outboxId` is in `from`'s mailbox; see graph-lookup.ts. */
  lookupSentMessage(from: string, outboxId: string, signal: AbortSignal): Promise<LookupResult>
  /**
   * The same sender (one token cache), its log lines carrying `db` as every other line about a
   * database's rows does.
   */
  forDatabase(db: string): GraphSender
}

interface GraphSenderDeps {
  config: GraphConfig
  /** Sender mailbox when a mail carries none. */
  mailFrom: string
  tokens: TokenSource
  fetch: typeof fetch
  clock: Clock
  log: Logger
}

export function createGraphSender(d: GraphSenderDeps): GraphSender {
  const apiUrl = d.config.apiUrl.replace(/\/+$/, '')
  const request = createGraphRequest({ ...d, requestTimeoutMs: d.config.requestTimeoutMs })
  // Never aborted: a shutdown is no reason for the token source's error.
  const running = new AbortController().signal
  const unavailable = () => {
    const e = d.tokens.failingWith()
    return e ? noTokenOutcome(e, running, d.tokens) : null
  }

  const bound = (log: Logger): GraphSender => ({
    name: 'graph',
    send: (mail, signal) => send(log, mail, signal),
    unavailable,
    lookupSentMessage: createMailboxLookup({
      apiUrl,
      request,
      log,
      now: () => d.clock.now(),
    }),
    forDatabase: (db) => bound(d.log.child({ db })),
  })

  async function send(log: Logger, mail: OutboundMail, signal: AbortSignal): Promise<SendOutcome> {
    const body = JSON.stringify(
      buildSendMailBody(mail, { saveToSentItems: d.config.saveToSentItems }),
    )
    const problem = checkSendable(mail, body)
    if (problem) return { kind: 'reject', ...problem }
    const from = mail.from.address || d.mailFrom
    const exchange = await request(
      `${apiUrl}/users/${encodeURIComponent(from)}/sendMail`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body },
      signal,
    )
    let outcome: SendOutcome
    if ('failed' in exchange) {
      outcome = exchange.failed
    } else {
      const { res, text } = exchange
      const result = classifySendResponse(res.status, res.headers, text, d.clock.now())
      // Still 401 with a fresh token: not the row's fault, so back off rather than fail it.
      outcome = result.kind === 'token_rejected' ? { ...result, kind: 'retry' } : result
    }
    const fields = {
      outboxId: mail.outboxId,
      attempt: mail.attempt,
      outcome: outcome.kind,
      code: outcome.kind === 'sent' ? undefined : outcome.code,
      httpStatus: outcome.httpStatus,
      requestId: outcome.requestId,
    }
    if (outcome.kind === 'sent') log.debug('graph sendMail accepted', fields)
    else log.info('graph sendMail not accepted', fields)
    return outcome
  }

  return bound(d.log)
}
