// Why a database could not be reached, for /readyz: a code and what it means, never the URL's host, user or the server's address.
import { namesInPlaceOfMessage } from '../database-error-names.ts'
import { TLS_ADVICE, tlsFailureOf } from './tls-failure.ts'

/** What each network failure's code says an operator should look at (a host or port of the URL). */
const NETWORK: Readonly<Record<string, string>> = {
  ECONNREFUSED:
    "nothing accepts connections at the URL's host and port: the server is down or restarting, or the port is wrong",
  ENOTFOUND:
    "the URL's host name does not resolve: check the host (a server replaced by a restore or an upgrade has a new one?)",
  EAI_AGAIN: "the URL's host name could not be resolved now: DNS is failing",
  ETIMEDOUT: "the URL's host did not answer the connection: network, firewall or a stopped machine",
  EHOSTUNREACH: "no route to the URL's host: network or firewall",
  ENETUNREACH: "no route to the URL's host: network or firewall",
  ECONNRESET: 'the connection was closed on the way: the server restarting, or a proxy between',
}

/** What each connect failure's code says an operator should look at. */
const MEANINGS: Readonly<Record<string, string>> = {
  ...NETWORK,
  ...TLS_ADVICE,
  connection_terminated:
    'the server (or something on the way) closed the connection: restarting, or a proxy between',
}

/**
 * `e`, a failure that is no answer of the server (an outage), as `CODE: meaning`. A SQLSTATE (the
 * server starting or shutting down, too many clients) keeps the server's words, which name no host;
 * a Node error's message may (a host, an address), so only its code and our words are shown.
 */
export function unreachableCause(e: unknown, waitedMs?: number): string {
  // A host with several addresses, each refused: the first one's failure stands for them.
  if (e instanceof AggregateError && e.errors.length > 0)
    return unreachableCause(e.errors[0], waitedMs)
  const code = (e as { code?: unknown } | null)?.code
  const message = e instanceof Error ? e.message : String(e)
  const tls = tlsFailureOf(code, message)
  if (tls) return `${tls}: ${MEANINGS[tls]}${tls === 'tls_certificate' ? ` (${code})` : ''}`
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code))
    return namesInPlaceOfMessage(e) ?? `SQLSTATE ${code}: ${message}`
  if (typeof code === 'string' && MEANINGS[code]) return `${code}: ${MEANINGS[code]}`
  if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) return `${code}: see the logs`
  if (/timeout|no answer within/i.test(message)) {
    return waitedMs === undefined
      ? 'timeout: no answer in time'
      : `timeout: no answer within ${Math.round(waitedMs / 100) / 10} s`
  }
  if (/Connection terminated/i.test(message)) {
    return `connection_terminated: ${MEANINGS.connection_terminated}`
  }
  return 'unknown: see the logs'
}

/**
 * `message` (a failed connect in the driver's words, which name the host and port tried), with
 * what to look at when `e` is a network failure: check-config's and migrate's lines, as /readyz.
 */
export function withUnreachableAdvice(message: string, e: unknown): string {
  const first = e instanceof AggregateError && e.errors.length > 0 ? e.errors[0] : e
  const code = (first as { code?: unknown } | null)?.code
  return typeof code === 'string' && NETWORK[code] ? `${message}: ${NETWORK[code]}` : message
}
