// Why a status read failed, as status reports it: a code (SQLSTATE, a Node code, or one of ours) and the message, a read the server cancelled at --timeout said for what it means.
import { QUERY_CANCELED_SQLSTATE } from '../db/sqlstate.ts'
import { tlsFailureOf } from '../db/tls-failure.ts'
import { describeError } from '../errors.ts'

export interface StatusError {
  /**
   * SQLSTATE, a Node code (ECONNREFUSED, ENOTFOUND), `timeout`, `connection_terminated`,
   * `tls_refused` (the server serves no TLS) or `tls_certificate` (its certificate is not trusted).
   */
  code: string
  message: string
}

/** `timeoutMs`: --timeout, named when the server cancelled a read at it. */
export function errorOf(e: unknown, timeoutMs: number): StatusError {
  if (e instanceof AggregateError && e.errors.length > 0) return errorOf(e.errors[0], timeoutMs)
  const message = e instanceof Error ? describeError(e) || e.name : String(e)
  const code = (e as { code?: unknown } | null)?.code
  // The server cancelled a read that ran past the bound, no lock wait having reached half of it:
  // the server answers, slowly (CPU, I/O), or the read is heavy for it. Said so, not as an outage.
  if (code === QUERY_CANCELED_SQLSTATE && /statement timeout/.test(message)) {
    return {
      code,
      message: `${message} (the read ran past --timeout, ${timeoutMs / 1000} s, no lock in the way: the server is slow to answer, or the read is heavy for it)`,
    }
  }
  // A certificate's own code (DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED…) stays in the message.
  const tls = tlsFailureOf(code, message)
  if (tls === 'tls_certificate') return { code: tls, message: `${message} (${code})` }
  if (tls) return { code: tls, message }
  if (typeof code === 'string' && code) return { code, message }
  if (/timeout/i.test(message)) return { code: 'timeout', message }
  // pg's words for a socket the server (or something on the way) closed, which carry no code.
  if (/Connection terminated/i.test(message)) return { code: 'connection_terminated', message }
  return { code: 'unknown', message }
}
