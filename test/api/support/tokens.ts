// Test bearer tokens: HS256 with the test secret, claims overridable per case.
import { type JWTPayload, SignJWT } from 'jose'

// Generated per run: no secret, not even a test one, is committed.
export const SECRET = `${crypto.randomUUID()}${crypto.randomUUID()}`
export const ISSUER = 'https://issuer.test'
export const AUDIENCE = 'outbox-mailer'

export interface TokenOptions {
  scope?: string
  tenant?: string
  sub?: string
  /** Seconds from now; negative = already expired. */
  expiresIn?: number | null
  issuer?: string
  audience?: string
  secret?: string
  extra?: JWTPayload
}

export async function token(o: TokenOptions = {}): Promise<string> {
  const claims: JWTPayload = { scope: o.scope ?? 'outbox:read outbox:write', ...o.extra }
  if (o.tenant !== undefined) claims.tenant = o.tenant
  const now = Math.floor(Date.now() / 1000)
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(now)
    .setSubject(o.sub ?? 'operator-1')
    .setIssuer(o.issuer ?? ISSUER)
    .setAudience(o.audience ?? AUDIENCE)
  if (o.expiresIn !== null) jwt = jwt.setExpirationTime(now + (o.expiresIn ?? 300))
  return jwt.sign(new TextEncoder().encode(o.secret ?? SECRET))
}

export const bearer = (t: string) => ({ authorization: `Bearer ${t}` })
