// The optional `senders` claim: a token confined to the sender mailboxes it lists, as `tenant` confines it to one tenant.
import type { JWTPayload } from 'jose'
import { senderKey } from '../config/allowed-senders.ts'
import { isEmailAddress } from '../config/email-address.ts'
import { AppError } from '../errors.ts'
import { INVALID_TOKEN } from './token-refusal.ts'

/**
 * The `senders` claim of a verified token as senderKey's keys, or null without one. Only a
 * non-empty JSON array of addresses: a lone string (or an empty list) would read as a typo of a
 * confinement that confines nothing, so it is a 401, never taken as "any".
 */
export function sendersClaim(p: JWTPayload): ReadonlySet<string> | null {
  const senders = p.senders
  if (senders === undefined) return null
  if (
    !Array.isArray(senders) ||
    senders.length === 0 ||
    !senders.every((s) => typeof s === 'string' && isEmailAddress(s.trim()))
  ) {
    throw new AppError(
      'unauthorized',
      'the senders claim must be a non-empty array of e-mail addresses',
      { ...INVALID_TOKEN, reason: 'claim_invalid', claim: 'senders' },
    )
  }
  return new Set(senders.map(senderKey))
}
