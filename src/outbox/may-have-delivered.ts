// The words saying a send of a row may have delivered it unverified (interrupted, or resent without a lookup): one phrasing per meaning, every last_error and history entry that says so built from here.

/*
 * Each is a clause that follows the writer's own words after "; " (afterWords) or a failure's
 * message in parentheses (afterMessage). Rows and history entries keep the words they were written
 * with: a reader of an older binary's entry matches history-kind.ts's OLD_* (never these), and one
 * of this binary's matches both (resent-unverified.ts), so these may be reworded.
 */

/** The row's interrupted send, unnamed: an expiry, a cancel with lookups off, a throttle's end. */
export const INTERRUPTED_SEND_MAY_HAVE_DELIVERED = 'an interrupted send may have delivered it'

/** The send the words before name: the last send of a row out of attempts, "its interrupted send". */
export const THAT_SEND_MAY_HAVE_DELIVERED = 'that send may have delivered it'

/**
 * An interrupted send before the attempt the words name, which sent nothing (an expiry, a cancel,
 * a render failure, a hold for review) or was answered for sure (an unverified resend refused or
 * answered 500, a failure after a held send was retried).
 */
export const EARLIER_SEND_MAY_HAVE_DELIVERED = 'an earlier interrupted send may have delivered it'

/** Both: the last send, a resend that may have reached the provider too, and the interrupted one it resent. */
export const BOTH_SENDS_MAY_HAVE_DELIVERED =
  'that send, or an earlier interrupted one, may have delivered it'

/** A clause after the writer's own words: "not sent again before expiresAt; …". */
export const afterWords = (clause: string) => `; ${clause}`

/** A clause after a failure's message, whatever its words: "HTTP 403 (…)". */
export const afterMessage = (clause: string) => ` (${clause})`
