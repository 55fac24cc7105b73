// A fake Entra tenant for the API tests: its ids and issuers (GUIDs made per run), its key set served on loopback, an app per token version, and its tokens' claims.
import type { JWK, JWTPayload } from 'jose'
import type { ApiDeps } from '../../../src/api/app.ts'
import { appOnDefault, type Db } from './harness.ts'

export const TENANT_ID = crypto.randomUUID()
export const CLIENT_ID = crypto.randomUUID()
export const V1_ISSUER = `https://sts.windows.net/${TENANT_ID}/`
export const V2_ISSUER = `https://login.microsoftonline.com/${TENANT_ID}/v2.0`
export const APP_ID_URI = `api://${CLIENT_ID}`

/** `jwk` served as the tenant's key set, at the path Entra's discovery names. */
export function serveEntraKeys(jwk: JWK) {
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: () => Response.json({ keys: [jwk] }),
  })
  return { server, jwksUrl: `http://127.0.0.1:${server.port}/${TENANT_ID}/discovery/v2.0/keys` }
}

/** The app as each token version's registration configures it (one issues one: its manifest's accessTokenAcceptedVersion). */
export function entraApps(d: Omit<Db, 'name'>, jwksUrl: string, over: Partial<ApiDeps> = {}) {
  const verifying = (issuer: string, audience: string) =>
    appOnDefault(d, { ...over, auth: { jwtSecret: null, jwksUrl, issuer, audience } }).app
  return { v1: verifying(V1_ISSUER, APP_ID_URI), v2: verifying(V2_ISSUER, CLIENT_ID) }
}

/** An access token's claims as Entra issues them for this app, `extra` on top. */
export function entraClaims(version: '1.0' | '2.0', extra: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000)
  return {
    aud: version === '1.0' ? APP_ID_URI : CLIENT_ID,
    iss: version === '1.0' ? V1_ISSUER : V2_ISSUER,
    iat: now,
    nbf: now,
    exp: now + 3600,
    tid: TENANT_ID,
    oid: crypto.randomUUID(),
    sub: crypto.randomUUID(),
    ver: version,
    ...extra,
  }
}
