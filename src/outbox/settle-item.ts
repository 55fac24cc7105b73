// What a settlement takes and returns: a lease's Settlement, the codes of rows given back uncounted, and the row a statement reports.

export type Settlement =
  | {
      kind: 'sent'
      /** For the history only (a sent row has no last_error): why a row with its cancel requested went. */
      message?: string
    }
  | {
      kind: 'failed'
      code: string
      message: string
      /** An interrupted earlier send stays unresolved: its mark is kept for a retry to look it up. */
      ambiguous?: boolean
      /**
       * A refused resend of an interrupted earlier send not looked up (as the retry's
       * resentUnverified): it delivered nothing, and its failure names that earlier send.
       */
      resentUnverified?: true
      /**
       * The lookup of the interrupted send was refused for good (404: the row's mailbox does not
       * exist): its failure names the send that may have delivered the row, as an out-of-attempts
       * failure after a lookup that cannot tell does.
       */
      lookupRefused?: true
    }
  | {
      kind: 'expired'
      /** The interrupted earlier send was looked up past its grace and not found: it delivered nothing. */
      notSent?: true
    }
  | {
      kind: 'cancelled'
      /** The row's last_error, when not CANCELLED_BEFORE_SEND (cancel-wins.ts). */
      message?: string
      /** An interrupted earlier send stays unresolved: its mark is kept for a retry to look it up. */
      ambiguous?: boolean
    }
  /**
   * A lease past its max_attempts (Lease.pastAttempts) whose interrupted send its lookup did not
   * find sent: failed as out of attempts, with that attempt's error. `notSent`: looked up past the
   * grace and not found, it delivered nothing (the mark cleared); else it may have (the mark kept).
   */
  | { kind: 'exhausted'; notSent?: true }
  | {
      kind: 'retry'
      code: string
      message: string
      delayMs: number
      /** Throttles do not count against max_attempts. */
      throttled: boolean
      /** The send may have reached the provider (aborted mid-send): the next attempt must resolve it. */
      ambiguous: boolean
      /**
       * A resend of an interrupted earlier send not looked up (no lookup, or none that could tell;
       * policy resend): `ambiguous` holds for that earlier send; `sendAmbiguous` says whether this
       * send may have reached the provider as well. A failure names the send that may have delivered it.
       */
      resentUnverified?: { sendAmbiguous: boolean }
      /**
       * Mailbox lookups are on: an ambiguous retry on the row's last attempt is not its failure yet;
       * the row waits to be looked up (claimed past its attempts: Lease.pastAttempts), sent if found.
       */
      lookUpFirst?: boolean
      /**
       * A wait to look an interrupted send up again (too early, held back, throttled): it may
       * run past the row's expiresAt, within the lookup grace and PAST_EXPIRY_LOOKUP_LIMIT_SECONDS
       * of it (settle.ts), the row only looked up there, never sent.
       */
      lookupWait?: true
      /**
       * Graph refused the sender mailbox itself (404 for MAIL_FROM, 403: the app may not send from
       * it): a wait like a throttle's, told apart in /metrics (outbox_graph_mailbox_refused_total).
       */
      mailboxRefused?: true
    }
  /**
   * Never started (e.g. shutdown before the send): back to pending, the attempt not counted.
   * `unconfirmed`: given back before its send because this process could not count on the lease
   * with the send's margin (its heartbeat's answer late or missing): a lost lease only if the
   * release finds the row taken.
   */
  | { kind: 'released'; unconfirmed?: true }

/**
 * The settlement of a lease claimed past its row's expiresAt (`Lease.expired`), let through only to
 * look an interrupted earlier send up, never to send: a wait to look it up again (uncounted, its
 * mark kept: the lookup too early, its mailbox paused, throttled, a failed request) stands, as a
 * lookupWait, bounded where it settles; whatever else held it back (a counted retry, the lookup
 * refused, the row unrenderable) fails it expired with its mark kept and named, not as a wait
 * ("still throttled at its expiresAt: not sent: …" of a message that may have gone). A send found,
 * a release, a recorded cancel and an expiry stand.
 */
export const pastExpiry = (s: Settlement): Settlement =>
  s.kind === 'sent' || s.kind === 'released' || s.kind === 'cancelled' || s.kind === 'expired'
    ? s
    : s.kind === 'retry' && s.throttled && s.ambiguous
      ? { ...s, lookupWait: true }
      : { kind: 'expired' }

/**
 * The settlement of a lease claimed past its max_attempts (`Lease.pastAttempts`), let through only
 * to look its interrupted send up: a wait to look again (uncounted) stands, as do a send found, a
 * failure, a release, a cancel and an expiry; nothing else may send it or count an attempt.
 */
export const pastAttempts = (s: Settlement): Settlement =>
  s.kind !== 'retry' || s.throttled ? s : { kind: 'exhausted' }

/**
 * A provider's text (an error message, a request id from an error body) as Postgres text can hold
 * it: without U+0000, which it refuses (22021). One NUL failed the whole batch's settlement, every
 * try, and after half a lease its rows were given up and reclaimed as interrupted sends.
 */
export const storable = (text: string): string => text.replaceAll('\u0000', '')

/** The code of a row given back uncounted to wait for its mailbox's reserved pacing turn. */
export const PACED_CODE = 'mailbox_paced'
/** The code of a row given back uncounted, unsent, while a provider throttle or refusal pauses its mailbox. */
export const PAUSED_CODE = 'mailbox_paused'
/**
 * The `last_error` of a row that waits for its mailbox's pause (given back, or left unclaimed):
 * `reason` what paused it when the transport knows it is no throttle (Graph refusing MAIL_FROM),
 * so a user reading the row does not look for a rate problem.
 */
export const pausedRowMessage = (reason: string | null): string =>
  `not sent: ${reason ?? 'its sender mailbox is paused after a provider throttle'}`

/**
 * The codes of a row given back uncounted because the app got no provider token (Entra down,
 * hung, unreachable, throttling or refusing the credential): our own `token_…` (token_timeout,
 * token_network, token_http_503, …), Entra's `AADSTS…`, or a GRAPH_CERTIFICATE outside its dates,
 * refused before Entra is asked (transport/graph-credential.ts). Over once a token comes
 * (token-wait-rows.ts).
 */
const NO_TOKEN = 'token_|AADSTS[0-9]|certificate_expired$|certificate_not_yet_valid$'
/** A Postgres regular expression (`~`) matching NO_TOKEN's codes. */
export const NO_TOKEN_CODE = `^(${NO_TOKEN})`

/**
 * The codes of a row given back uncounted to wait for a token: NO_TOKEN_CODE's, or the provider
 * itself out of reach or refusing every token (`graph_unreachable`, `graph_unauthorized`: not over
 * because Entra issued one). Nothing of the row's reached the provider, so consecutive ones say
 * nothing new about it: recorded once per run, logged at debug, renamed by a pause, never a
 * mailbox's pause (test/unit/graph-token-error.test.ts and graph-credential.test.ts keep the
 * transport to it).
 */
export const TOKEN_WAIT_CODE = `^(${NO_TOKEN}|graph_unreachable$|graph_unauthorized$)`

export interface SettleItem {
  id: string
  token: string
  settlement: Settlement
  /**
   * The lease began with an interrupted earlier send unresolved: a release keeps that mark, and an
   * expiry names it.
   */
  ambiguous?: boolean
  /**
   * Its claim counted no attempt (settle.ts gives it back, whatever the outcome): it only looks an
   * interrupted send up (Lease.pastAttempts, a lease whose cancel was requested, or one past its
   * expiresAt: lookupOnly).
   */
  uncounted?: boolean
  /** Lease.expired: a wait to look its interrupted send up that runs past its bound fails it expired. */
  pastExpiry?: boolean
  /** Lease.cancelRequested: with `ambiguous`, a wait to look its interrupted send up again keeps it pending. */
  cancelRequested?: boolean
  startedAt: Date | null
  httpStatus?: number | undefined
  requestId?: string | undefined
}

export interface SettledRow {
  id: string
  status: string
  /** What the attempt history recorded; BUSY_OUTCOME for a row not settled (recorded nothing). */
  outcome: string
  code: string | null
  /**
   * A row left pending to look its interrupted send up at its expiresAt, before its retry's delay
   * is out (settleLeases): milliseconds until it is due.
   */
  dueMs?: number
  /**
   * The attempt its history entry numbers (settleLeases): a lease that only looks a send up names
   * the attempt of that send (looked-up-attempt.ts), not its claim's. Absent: the lease's attempt.
   */
  attempt?: number
}

/**
 * The outcome of a row a settlement did not record because another transaction held it locked (an
 * application's open UPDATE of the row, an API action, a heartbeat) while its lease was still the
 * caller's: asked again once the lock goes, never counted as lost.
 */
export const BUSY_OUTCOME = 'busy'
