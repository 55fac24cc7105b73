// The mailbox-lookup port: after a send whose outcome was never learned, is the message in the sender's mailbox?
import type { OutboundMail, SendOutcome, TokenSlowKeep } from './sender.ts'

/**
 * `found`: the mailbox holds the message, so it was submitted. `not_found`: neither Sent Items nor
 * the rest of the mailbox (Drafts/Outbox, where it sits until transport picks it up) has it.
 * `unavailable`: not permitted (Graph: 403 without Mail.Read): the caller applies its
 * ambiguous-send policy. `error`: a transient failure: the caller asks again later.
 * `throttledForMs`: Graph throttled the lookup (429/503/504): nobody should ask the mailbox
 * anything before its Retry-After. `rejected`: a 404, the sender mailbox does not exist or cannot be
 * used (ErrorInvalidUser, MailboxNotEnabledForRESTAPI, ResourceNotFound): sendMail is refused the
 * same way and fails the row with that code, so asking again until the throttle deadline (a day)
 * would only delay the same verdict; for the configured sender mailbox (MAIL_FROM) a 404 is a
 * `throttledForMs` instead, as its send waits (transport/graph-outcome.ts). `unreachable`: the
 * provider could not be asked at all (Graph: no token to be had): the outcome a send would get
 * now, and the row waits as that send would (uncounted, until the provider may be asked again),
 * not as a failed lookup. `stopped`: a stop cut the lookup off before the provider answered it (a
 * worker alone's kept wait for its token, or the hard abort): nothing learned, the caller releases
 * the row; a failure the provider answered once a stop has begun (a 500) stays `error`.
 */
export type LookupResult =
  | 'found'
  | 'not_found'
  | 'unavailable'
  | 'error'
  | 'stopped'
  | {
      throttledForMs: number
      /** The status Graph answered the lookup with (429, 503, 504…); absent for a wait no request met. */
      httpStatus?: number
      /**
       * Graph's word when the mailbox's quota holds it (its store full, its sending quota spent:
       * ErrorQuotaExceeded, …): the row keeps the code, as a send refused so does.
       */
      quota?: { code: string; message: string }
      /** Graph refused the configured sender mailbox itself (a 404 for MAIL_FROM): its code. */
      refused?: LookupRejection
    }
  | { rejected: LookupRejection }
  | { unreachable: Extract<SendOutcome, { kind: 'retry' }> }

interface LookupRejection {
  /** Graph's error code, or `http_404` when the body names none (as a refused send is coded). */
  code: string
  message: string
  httpStatus: number
  requestId?: string
}

/**
 * Asks `mail`'s sender mailbox for the message tagged with its outbox id (Graph: graph-lookup.ts).
 * `keptForToken`: asked, as a send asks it, should its token wait turn slow (TokenSlowKeep).
 */
export type MailboxLookup = (
  mail: OutboundMail,
  signal: AbortSignal,
  keptForToken?: TokenSlowKeep,
) => Promise<LookupResult>
