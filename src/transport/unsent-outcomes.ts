// The outcomes of a send given back before Graph was asked: its database's id unread, or its token request slow.
import type { SendOutcome } from '../outbox/sender.ts'
import { TOKEN_SLOW_CODE, TOKEN_SLOW_MS } from './token-slow.ts'

/**
 * A send whose database's id could not be read (the database away since the claim): nothing was
 * asked of Graph, so the row waits uncounted, not ambiguous, and the mailbox is not paused.
 */
export const DATABASE_ID_UNREAD: SendOutcome = {
  kind: 'retry',
  code: 'database_id_unread',
  message: "the database's id (mailer.database_identity) could not be read; nothing was sent",
  throttled: true,
  pausesMailbox: false,
  ambiguous: false,
}

/**
 * A send whose token request Entra has not answered for TOKEN_SLOW_MS (no cached token serving):
 * nothing was asked of Graph, so the row goes back uncounted and due at once, for a worker that has
 * a token (or this one, once its request ends). A token wait: recorded once per run of waits.
 */
export const TOKEN_SLOW: SendOutcome = {
  kind: 'retry',
  code: TOKEN_SLOW_CODE,
  message: `no Graph token: Entra has not answered this worker's token request within ${TOKEN_SLOW_MS / 1000} s; given back unsent for a worker with a token`,
  throttled: true,
  afterMs: 0,
  pausesMailbox: false,
  ambiguous: false,
}
