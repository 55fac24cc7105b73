// What a verified token's claims make of its caller: a Principal with its subject, granted scopes (scope, scp, roles), tenant, database and senders.
import { createHash } from 'node:crypto'
import type { JWTPayload } from 'jose'
import { AppError } from '../errors.ts'
import type { Principal } from './context.ts'
import { databaseClaim } from './database-claim.ts'
import { sendersClaim } from './senders-claim.ts'
import { INVALID_TOKEN } from './token-refusal.ts'

// What mailer.check_options accepts as a tenant: a claim outside it can match no row (and a NUL in
// it would reach Postgres, which cannot hold one).
const TENANT = /^[A-Za-z0-9_.:-]{1,200}$/

export function toPrincipal(p: JWTPayload, token: string): Principal {
  const scope = p.scope
  if (scope !== undefined && typeof scope !== 'string') {
    throw new AppError('unauthorized', 'the scope claim must be a space-separated string', {
      ...INVALID_TOKEN,
      reason: 'claim_invalid',
      claim: 'scope',
    })
  }
  const tenant = p.tenant
  if (tenant !== undefined && (typeof tenant !== 'string' || !TENANT.test(tenant))) {
    throw new AppError(
      'unauthorized',
      'the tenant claim must be a tenant id: 1-200 characters of A-Z a-z 0-9 _ . : -',
      { ...INVALID_TOKEN, reason: 'claim_invalid', claim: 'tenant' },
    )
  }
  const subject =
    typeof p.sub === 'string' && p.sub.length > 0
      ? `sub:${p.sub}`
      : `token:${createHash('sha256').update(token).digest('base64url').slice(0, 22)}`
  return {
    subject,
    scopes: grantedScopes(p, scope ?? ''),
    tenant: tenant ?? null,
    database: databaseClaim(p),
    senders: sendersClaim(p),
  }
}

const words = (s: string) => s.split(' ').filter(Boolean)
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []

/**
 * What the token grants: the `scope` claim (the contract), Entra's `scp` (delegated permissions,
 * space-separated; an array as Okta sends it) and `roles` (app roles: an application's permissions,
 * or a user's assigned role; a JSON array). Entra's permission and app-role values may hold ':', so
 * `outbox:read` is written the same in all three. Only exact values count; a `scp` or `roles` of
 * another shape grants nothing (it may be another provider's claim of the same name).
 */
function grantedScopes(p: JWTPayload, scope: string): Set<string> {
  const scp = typeof p.scp === 'string' ? words(p.scp) : strings(p.scp)
  return new Set([...words(scope), ...scp, ...strings(p.roles)])
}
