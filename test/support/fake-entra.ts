// A strict fake of the Entra v2 token endpoint (client credentials): validates assertions as graph.md §1 and its appendix say.
import { createHash, randomUUID, X509Certificate } from 'node:crypto'
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose'

export interface TokenRequestRecord {
  ok: boolean
  /** AADSTS code of a refused request. */
  error?: string
  grant?: 'assertion' | 'secret'
  alg?: string
  thumbprintHeader?: 'x5t' | 'x5t#S256'
  at: number
  /** Held unanswered by a 'hang' fault (its client's own deadline or abort ends it). */
  hung?: true
}

export type TokenFault =
  | { status: number; error: string; aadsts: number; description?: string; retryAfter?: string }
  | 'hang'

export interface FakeEntraOptions {
  tenantId: string
  clientId: string
  /** PEM certificates registered on the app. */
  certificates: string[]
  clientSecret?: string
  /** The resource whose `/.default` scope is accepted (the fake Graph origin). */
  resource: string
  tokenLifetimeSeconds: number
  refreshInSeconds?: number
  /** Send expires_in as a string, as some proxies and clouds do. */
  expiresInAsString?: boolean
  now(): number
}

/** Graph treats the assertion's clock this leniently; so does the fake. */
const CLOCK_SKEW_SECONDS = 300
/** Not enforced by Entra; our own contract says an assertion lives at most 10 minutes. */
const MAX_ASSERTION_LIFETIME_SECONDS = 600
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

export function createFakeEntra(o: FakeEntraOptions) {
  const certs = o.certificates.map((pem) => {
    const cert = new X509Certificate(pem)
    return {
      cert,
      sha1: createHash('sha1').update(cert.raw).digest('base64url'),
      sha256: createHash('sha256').update(cert.raw).digest('base64url'),
    }
  })
  const tokens = new Map<string, { expiresAt: number; revoked?: 'expired' | 'invalid' }>()
  const requests: TokenRequestRecord[] = []
  let faults: TokenFault[] = []

  class Refusal extends Error {
    constructor(
      readonly status: number,
      readonly error: string,
      readonly aadsts: number,
      description: string,
      readonly retryAfter?: string,
    ) {
      super(description)
    }
  }
  const refuse = (
    status: number,
    error: string,
    aadsts: number,
    description: string,
    retryAfter?: string,
  ): never => {
    throw new Refusal(status, error, aadsts, description, retryAfter)
  }

  async function handle(req: Request, tokenUrl: string, tenant: string): Promise<Response> {
    const record: TokenRequestRecord = { ok: false, at: o.now() }
    requests.push(record)
    const fault = faults.shift()
    if (fault === 'hang') {
      record.hung = true
      return new Promise<Response>(() => {})
    }
    try {
      if (fault) {
        const text = fault.description ?? fault.error
        refuse(fault.status, fault.error, fault.aadsts, text, fault.retryAfter)
      }
      if (tenant !== o.tenantId) {
        refuse(400, 'invalid_request', 90002, `Tenant '${tenant}' not found.`)
      }
      if (
        !(req.headers.get('content-type') ?? '').startsWith('application/x-www-form-urlencoded')
      ) {
        refuse(
          400,
          'invalid_request',
          900144,
          "The request body must contain the following parameter: 'grant_type'.",
        )
      }
      const form = new URLSearchParams(await req.text())
      const field = (name: string) => form.get(name) ?? ''
      for (const name of ['grant_type', 'client_id', 'scope']) {
        if (!field(name))
          refuse(
            400,
            'invalid_request',
            900144,
            `The request body must contain the following parameter: '${name}'.`,
          )
      }
      if (field('grant_type') !== 'client_credentials') {
        refuse(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.')
      }
      if (field('client_id') !== o.clientId) {
        refuse(
          400,
          'unauthorized_client',
          700016,
          `Application with identifier '${field('client_id')}' was not found in the directory.`,
        )
      }
      const scopes = field('scope').split(' ').filter(Boolean)
      if (scopes.length !== 1 || !scopes[0]!.endsWith('/.default')) {
        refuse(
          400,
          'invalid_scope',
          1002012,
          'The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.',
        )
      }
      if (scopes[0] !== `${o.resource}/.default`) {
        refuse(
          400,
          'invalid_resource',
          500011,
          `The resource principal named ${scopes[0]} was not found in the tenant.`,
        )
      }
      const secret = form.get('client_secret')
      const assertion = form.get('client_assertion')
      if (secret !== null && assertion !== null) {
        refuse(
          400,
          'invalid_request',
          7000216,
          "Only one of 'client_assertion' or 'client_secret' may be sent.",
        )
      }
      if (secret !== null) {
        record.grant = 'secret'
        if (o.clientSecret === undefined || secret !== o.clientSecret) {
          refuse(401, 'invalid_client', 7000215, 'Invalid client secret provided.')
        }
      } else if (assertion !== null) {
        record.grant = 'assertion'
        if (field('client_assertion_type') !== ASSERTION_TYPE) {
          refuse(
            400,
            'invalid_request',
            900144,
            "The request body must contain the following parameter: 'client_assertion_type'.",
          )
        }
        await checkAssertion(assertion, tokenUrl, record)
      } else {
        refuse(
          401,
          'invalid_client',
          7000218,
          "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
      }
      const accessToken = `fake-${randomUUID()}`
      tokens.set(accessToken, { expiresAt: o.now() + o.tokenLifetimeSeconds * 1000 })
      record.ok = true
      const lifetime = o.expiresInAsString ? String(o.tokenLifetimeSeconds) : o.tokenLifetimeSeconds
      return Response.json({
        token_type: 'Bearer',
        expires_in: lifetime,
        ext_expires_in: lifetime,
        ...(o.refreshInSeconds !== undefined ? { refresh_in: o.refreshInSeconds } : {}),
        access_token: accessToken,
      })
    } catch (e) {
      if (!(e instanceof Refusal)) throw e
      record.error = `AADSTS${e.aadsts}`
      const response = errorResponse(e.status, e.error, e.aadsts, e.message, o.now())
      if (e.retryAfter !== undefined) response.headers.set('retry-after', e.retryAfter)
      return response
    }
  }

  async function checkAssertion(jwt: string, tokenUrl: string, record: TokenRequestRecord) {
    let header: Record<string, unknown>
    let claims: Record<string, unknown>
    try {
      header = decodeProtectedHeader(jwt) as Record<string, unknown>
      claims = decodeJwt(jwt) as Record<string, unknown>
    } catch {
      return refuse(401, 'invalid_client', 50027, 'JWT token is invalid or malformed.')
    }
    record.alg = String(header.alg)
    if (header.typ !== 'JWT')
      refuse(401, 'invalid_client', 50027, 'The client assertion header must have typ JWT.')
    const pairing =
      header.alg === 'PS256' && typeof header['x5t#S256'] === 'string' && header.x5t === undefined
        ? {
            name: 'x5t#S256' as const,
            print: header['x5t#S256'],
            find: (c: (typeof certs)[0]) => c.sha256,
          }
        : header.alg === 'RS256' &&
            typeof header.x5t === 'string' &&
            header['x5t#S256'] === undefined
          ? { name: 'x5t' as const, print: header.x5t, find: (c: (typeof certs)[0]) => c.sha1 }
          : undefined
    const used = String(header['x5t#S256'] ?? header.x5t ?? '')
    if (!pairing) refuse(401, 'invalid_client', 700027, notRegistered(used))
    record.thumbprintHeader = pairing!.name
    const match = certs.find((c) => pairing!.find(c) === pairing!.print)
    if (!match) return refuse(401, 'invalid_client', 700027, notRegistered(used))
    try {
      await compactVerify(jwt, match.cert.publicKey, { algorithms: [String(header.alg)] })
    } catch {
      refuse(401, 'invalid_client', 700027, 'Client assertion failed signature validation.')
    }
    const now = Math.floor(o.now() / 1000)
    for (const name of ['exp', 'nbf', 'iat']) {
      if (claims[name] !== undefined && typeof claims[name] !== 'number') {
        refuse(401, 'invalid_client', 50027, `Claim '${name}' must be a number.`)
      }
    }
    if (claims.aud !== tokenUrl)
      refuse(401, 'invalid_client', 50027, 'Invalid audience in the client assertion.')
    if (claims.iss !== o.clientId)
      refuse(401, 'invalid_client', 50027, 'Invalid issuer in the client assertion.')
    if (claims.sub !== claims.iss)
      refuse(
        401,
        'invalid_client',
        50048,
        'Subject mismatches Issuer claim in the client assertion.',
      )
    if (typeof claims.jti !== 'string' || claims.jti === '')
      refuse(401, 'invalid_client', 50027, 'The client assertion has no jti.')
    const exp = claims.exp as number | undefined
    const nbf = claims.nbf as number | undefined
    const start = nbf ?? (claims.iat as number | undefined) ?? now
    if (
      exp === undefined ||
      exp <= now - CLOCK_SKEW_SECONDS ||
      start > now + CLOCK_SKEW_SECONDS ||
      exp - start > MAX_ASSERTION_LIFETIME_SECONDS
    ) {
      refuse(
        401,
        'invalid_client',
        700024,
        `Client assertion is not within its valid time range. Current time: ${new Date(now * 1000).toISOString()}, assertion valid from ${new Date(start * 1000).toISOString()}, expiry time of assertion ${exp === undefined ? 'none' : new Date(exp * 1000).toISOString()}.`,
      )
    }
  }

  return {
    handle,
    requests,
    setFaults(f: TokenFault[]) {
      faults = [...f]
    },
    /** 'ok' for a live token; Graph's two flavours of 401 otherwise. */
    checkBearer(token: string): 'ok' | 'expired' | 'invalid' {
      const t = tokens.get(token)
      if (!t) return 'invalid'
      if (t.revoked) return t.revoked
      return o.now() < t.expiresAt ? 'ok' : 'expired'
    },
    revokeTokens(reason: 'expired' | 'invalid') {
      for (const t of tokens.values()) t.revoked = reason
    },
  }
}

function notRegistered(thumbprint: string): string {
  return `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${thumbprint}']`
}

/** Exactly Entra's error shape: numeric error_codes, description with trace lines, ids, timestamp. */
function errorResponse(status: number, error: string, aadsts: number, text: string, now: number) {
  const traceId = randomUUID()
  const correlationId = randomUUID()
  const timestamp = new Date(now)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z')
  return Response.json(
    {
      error,
      error_description: `AADSTS${aadsts}: ${text}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [aadsts],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${aadsts}`,
    },
    { status },
  )
}
