// The client assertion a certificate credential proves itself with: a JWT Entra takes, signed afresh for each token request.
import { type KeyObject, randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import type { CertificateCredential } from './graph-credential.ts'

/** Entra accepts at most what we sign; MSAL uses the same 10 minutes. */
const ASSERTION_LIFETIME_SECONDS = 600

/** A fresh assertion per token request: requests are rare (about one an hour), so no reuse. */
export function signClientAssertion(p: {
  key: KeyObject
  info: CertificateCredential
  tokenUrl: string
  clientId: string
  now: number
}): Promise<string> {
  const nowSeconds = Math.floor(p.now / 1000)
  const header =
    p.info.algorithm === 'PS256'
      ? { alg: 'PS256', typ: 'JWT', 'x5t#S256': p.info.x5tS256 }
      : { alg: 'RS256', typ: 'JWT', x5t: p.info.x5t }
  return new SignJWT({})
    .setProtectedHeader(header)
    .setAudience(p.tokenUrl)
    .setIssuer(p.clientId)
    .setSubject(p.clientId)
    .setJti(randomUUID())
    .setNotBefore(nowSeconds)
    .setIssuedAt(nowSeconds)
    .setExpirationTime(nowSeconds + ASSERTION_LIFETIME_SECONDS)
    .sign(p.key)
}
