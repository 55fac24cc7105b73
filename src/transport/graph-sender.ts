// The production Sender: POST /users/{from}/sendMail with an app-only token, plus the mailbox lookup.
import { type Clock, monotonicNow } from '../clock.ts'
import type { GraphConfig } from '../config/graph-settings.ts'
import type { Logger } from '../log.ts'
import type { LookupResult } from '../outbox/mailbox-lookup.ts'
import { parseDefaultFrom } from '../outbox/render.ts'
import type { OutboundMail, Sender, SendOutcome, TokenSlowKeep } from '../outbox/sender.ts'
import { createMailboxLookup } from './graph-lookup.ts'
import { buildSendMailBody, checkSendable } from './graph-message.ts'
import { classifySendResponse, refusesMailbox } from './graph-outcome.ts'
import { createGraphReachability, type GraphReachability } from './graph-reachability.ts'
import { createGraphRequest } from './graph-request.ts'
import { logSendOutcome } from './graph-send-log.ts'
import type { LookupDatabase, RowMail } from './lookup-match.ts'
import { noTokenOutcome } from './no-token-outcome.ts'
import { createSenderMailbox, type SenderMailbox } from './sender-mailbox.ts'
import type { TokenSource } from './token-source.ts'
import { DATABASE_ID_UNREAD, TOKEN_SLOW } from './unsent-outcomes.ts'

export interface GraphSender extends Sender {
  /** Whether a message tagged with `outboxId` is in `from`'s mailbox; see graph-lookup.ts. */
  lookupSentMessage(
    from: string,
    outboxId: string,
    signal: AbortSignal,
    /** The row's mail, which tells an earlier release's message apart with several databases. */
    mail?: RowMail,
    /** Asked should its token wait turn slow (Graph's 401, its fresh token slow), as a send asks. */
    kept?: TokenSlowKeep,
  ): Promise<LookupResult>
  /**
   * The same sender (one token cache, one sender mailbox state) for the rows of database `db`: its
   * messages name it (OutboxDatabase) and carry `id`'s answer, the database's own id
   * (OutboxDatabaseId), and its lookups find only those (graph-lookup.ts), and its log lines carry
   * `db` as every other line about a database's rows does. `alone`: no other database of this
   * process sends. Without `id` (a test's sender) messages carry the name only, matched by it.
   */
  forDatabase(db: string, o?: { alone: boolean; id?: () => Promise<string> }): GraphSender
  /** MAIL_FROM as Graph last answered for it (shared by every database). */
  readonly senderMailbox: SenderMailbox
  /** Graph out of reach or refusing every token, as this process last met it (shared by every database). */
  readonly reachability: GraphReachability
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
  const reachability = createGraphReachability({ clock: d.clock, log: d.log })
  const request = createGraphRequest({
    ...d,
    requestTimeoutMs: d.config.requestTimeoutMs,
    reachability,
  })
  // MAIL_FROM as the renderer reads it: `Name <address>` sends from the address.
  const defaultFrom = defaultAddress(d.mailFrom)
  const senderMailbox = createSenderMailbox({
    address: defaultFrom,
    log: d.log,
    clock: d.clock,
  })
  // Never aborted: a shutdown is no reason for the token source's error.
  const running = new AbortController().signal
  const noop = () => {}
  const unavailable = () => {
    const e = d.tokens.failingWith()
    if (e) return noTokenOutcome(e, running, d.tokens)
    return d.tokens.slowRequest() ? TOKEN_SLOW : reachability.holding()
  }

  const bound = (
    log: Logger,
    database?: LookupDatabase,
    databaseId?: () => Promise<string>,
  ): GraphSender => ({
    name: 'graph',
    send: (mail, signal, spentMs, kept) =>
      send(log, mail, signal, database?.name, databaseId, spentMs, kept),
    unavailable,
    // Its failure is the token source's to keep (failingWith), read by `unavailable`. Once a stop
    // has begun the row goes back unstarted whatever the answer: getToken begins no token request
    // for an aborted signal. Not past the request's turning slow: `unavailable` gives the row back
    // then, for a worker with a token, rather than holding it for the request's 30 s deadline.
    ready: (signal) => {
      const token = d.tokens.getToken(signal).then(noop, noop)
      const slowed = d.tokens.endsOrSlows()
      return slowed ? Promise.race([token, slowed]) : token
    },
    pauseReason: senderMailbox.pauseReason,
    lookupSentMessage: createMailboxLookup({
      apiUrl,
      request,
      log,
      now: () => d.clock.now(),
      senderMailbox,
      ...(database ? { database } : {}),
      ...(databaseId ? { databaseId } : {}),
    }),
    forDatabase: (db, o) =>
      bound(d.log.child({ db }), { name: db, alone: o?.alone ?? true }, o?.id),
    senderMailbox,
    reachability,
  })

  async function send(
    log: Logger,
    mail: OutboundMail,
    signal: AbortSignal,
    database: string | undefined,
    databaseId: (() => Promise<string>) | undefined,
    spentMs: number | undefined,
    kept: TokenSlowKeep | undefined,
  ): Promise<SendOutcome> {
    // The request's deadline runs from before the last check that recorded the send as started
    // (send_started_at, which a lookup of this send counts from), else from here: the drainer's
    // last look at the lease came just before.
    const startedAt = monotonicNow(d.clock) - (spentMs ?? 0)
    // Read once per database (then at once): a message without it could be taken for another
    // deployment's row by that one's lookup, so none goes without it.
    const id = databaseId
      ? await databaseId().catch((err: unknown) => {
          log.warn('graph sendMail not asked: the database id could not be read', {
            outboxId: mail.outboxId,
            err,
          })
          return null
        })
      : undefined
    if (id === null) return DATABASE_ID_UNREAD
    const body = JSON.stringify(
      buildSendMailBody(mail, {
        saveToSentItems: d.config.saveToSentItems,
        ...(database ? { database } : {}),
        ...(id ? { databaseId: id } : {}),
      }),
    )
    const problem = checkSendable(mail, body)
    if (problem) return { kind: 'reject', ...problem }
    const from = mail.from.address || defaultFrom
    const isDefault = senderMailbox.isDefault(from)
    const exchange = await request(
      `${apiUrl}/users/${encodeURIComponent(from)}/sendMail`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body },
      signal,
      startedAt,
      kept,
    )
    let outcome: SendOutcome
    if ('failed' in exchange) {
      outcome = exchange.failed
    } else {
      const { res, text } = exchange
      outcome = classifySendResponse(
        res.status,
        res.headers,
        text,
        d.clock.now(),
        isDefault ? 'default' : 'own',
      )
      if (isDefault) {
        if (outcome.kind === 'sent') senderMailbox.accepted()
        else if (refusesMailbox(res.status, outcome.code)) {
          senderMailbox.refused({
            code: outcome.code,
            httpStatus: res.status,
            requestId: outcome.requestId,
            ...(outcome.kind === 'retry' && outcome.afterMs ? { retryInMs: outcome.afterMs } : {}),
          })
        }
      }
    }
    logSendOutcome(log, mail, outcome, exchange)
    return outcome
  }

  return bound(d.log)
}

/** The mailbox MAIL_FROM names (configuration checked it at start; as written should it not parse). */
function defaultAddress(mailFrom: string): string {
  try {
    return mailFrom ? parseDefaultFrom(mailFrom).address : ''
  } catch {
    return mailFrom.trim()
  }
}
