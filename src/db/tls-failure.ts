// Which TLS failure a connect error is, if any (the server refused TLS, or its certificate was not trusted), and what to change in the URL.

/** pg's words when the server answers the SSLRequest with anything but S; it gives them no code. */
const REFUSED = [
  'The server does not support SSL connections',
  'There was an error establishing an SSL connection',
]

/**
 * The codes Node (and Bun) give a certificate the client would not trust: OpenSSL's verify results
 * (X509_V_ERR_* without the prefix) and the host name check's.
 */
const CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

type TlsFailure = 'tls_refused' | 'tls_certificate'

/** Each failure's cause and what to change, the one wording readiness, check-config and migrate use. */
export const TLS_ADVICE: Readonly<Record<TlsFailure, string>> = {
  // The deploy guide's URLs carry sslmode=verify-full; a Postgres on Fly's private network takes no TLS.
  tls_refused:
    'the server takes no TLS, which the URL asks for (sslmode): enable TLS on the server, or, on a private network only (a Fly Postgres reached at its .flycast or .internal address), set sslmode=disable in the URL (deploy guide, step 4)',
  tls_certificate:
    "the server's TLS certificate is not trusted: name its CA with sslrootcert in the URL (deploy guide, step 4)",
}

export function tlsFailureOf(code: unknown, message: string): TlsFailure | null {
  if (typeof code === 'string' && CERTIFICATE.has(code)) return 'tls_certificate'
  if (code === undefined && REFUSED.includes(message)) return 'tls_refused'
  return null
}

/** `message` (a failed connect in the driver's words), with the cause and what to change when `e` is a TLS failure. */
export function withTlsAdvice(message: string, e: unknown): string {
  const first = e instanceof AggregateError && e.errors.length > 0 ? e.errors[0] : e
  const failure = tlsFailureOf(
    (first as { code?: unknown } | null)?.code,
    first instanceof Error ? first.message : String(first),
  )
  return failure ? `${message}: ${TLS_ADVICE[failure]}` : message
}
