// The Sender port: what the drainer needs from a mail transport, and the closed set of outcomes it understands.

export interface MailAddress {
  address: string
  name?: string
}

export interface MailAttachment {
  filename: string
  contentType: string
  /** Base64 of the bytes. */
  contentBase64: string
  /** Content-ID for inline images referenced from the HTML body. */
  contentId?: string
}

/** A fully rendered message, ready for a transport. Holds personal data: never log it. */
export interface OutboundMail {
  outboxId: string
  tenant: string
  attempt: number
  /** options.correlationId, for X-Correlation-Id: one line, no control character. */
  correlationId: string | null
  from: MailAddress
  to: MailAddress[]
  cc: MailAddress[]
  bcc: MailAddress[]
  replyTo: MailAddress[]
  subject: string
  text: string | null
  html: string | null
  importance: 'low' | 'normal' | 'high' | null
  /** Extra `X-` headers supplied by the message (not including X-Outbox-Id / X-Correlation-Id). */
  headers: Record<string, string>
  attachments: MailAttachment[]
}

/** Details a transport may report for the attempt history. */
interface SendDetails {
  httpStatus?: number
  requestId?: string
}

export type SendOutcome =
  | ({ kind: 'sent' } & SendDetails)
  | ({
      kind: 'retry'
      code: string
      message: string
      /** Earliest retry, e.g. from Retry-After; otherwise the drainer's backoff applies. */
      afterMs?: number
      /** A throttle does not count against max_attempts. */
      throttled?: boolean
      /**
       * Whether a throttle holds back the mailbox's other sends until `afterMs` (default: yes). Not
       * for one that is the app's, not the mailbox's (a refused credential: the workers stop claiming).
       */
      pausesMailbox?: boolean
      /**
       * The pause is Graph refusing the mailbox itself (MAIL_FROM unknown, the app not allowed to send
       * from it), not its rate: said by `code`, not as a throttle.
       */
      refusesMailbox?: boolean
      /**
       * Whether the provider may have the message after all: true when it may (a gateway timeout on
       * the request), false when it cannot (no request was made). Absent: judged by the code
       * (`timeout`, `network` and `aborted` may have reached the provider). `aborted` with false:
       * the stop came before any request, and the row is released, uncounted, as if never started.
       */
      ambiguous?: boolean
    } & SendDetails)
  | ({ kind: 'reject'; code: string; message: string } & SendDetails)

/**
 * Asked by a send whose wait for its token turned slow (Graph: the fresh token after a 401 dropped
 * the cached one, Entra unanswered for TOKEN_SLOW_MS): null to give the row back unsent and due at
 * once, for a worker with a token; else the send waits for its token within its deadline, as a
 * row before its send does, until the signal answered aborts (a stop begun: released, unsent).
 * Absent: given back. Invariant: it answers by `deadline` (the send's, aborted when it passes or a
 * stop aborts the send), `leftMs` of it left when asked: a database read it makes is bounded by
 * them, not by the pool's statement_timeout, which outlasted the deadline.
 */
export type TokenSlowKeep = (deadline: AbortSignal, leftMs: number) => Promise<AbortSignal | null>

export interface Sender {
  readonly name: string
  /**
   * `spentMs`: milliseconds since before the last check that recorded the send as started was
   * asked. A transport with a request deadline runs it from there, so the request ends by
   * send_started_at plus its timeout in database time (lookup-grace.ts counts on it); from the
   * call when not given. `keptForToken`: asked should its token wait turn slow (TokenSlowKeep).
   */
  send(
    mail: OutboundMail,
    signal: AbortSignal,
    spentMs?: number,
    keptForToken?: TokenSlowKeep,
  ): Promise<SendOutcome>
  /**
   * The outcome any send would get now without reaching the provider (Graph: no token while the
   * one token backoff runs), else null. A row claimed meanwhile goes back with it at once, without
   * a provider slot or the last check: statements a send that cannot happen would only undo.
   */
  unavailable?(): SendOutcome | null
  /**
   * Resolves once `unavailable` can tell whether a send would reach the provider now (Graph: a
   * token in hand, or the answer of the one token request in flight or asked now); never throws.
   * A row awaits it before its mailbox's pacing turn: else a claim's rows all take or reserve
   * turns while the first asks Entra, and those sent back for a turn are named `mailbox_paced`
   * though a refused credential is what holds them. Statement-free: a cached token answers at once.
   * With `signal` aborted (a stop begun) it resolves at once and asks the provider nothing.
   */
  ready?(signal: AbortSignal): Promise<void>
  /**
   * Why `mailbox` stands paused, when it is not a throttle and the transport knows (Graph refusing
   * MAIL_FROM, with its code; with `refused`, the pause's cause read from the database, a refusal
   * of MAIL_FROM another worker met, without it), else null: the rows sent back for the pause say it.
   */
  pauseReason?(mailbox: string, refused?: boolean): string | null
}
