// claimPastPaused: the claim while MAIL_FROM's pause is known (claim_past_paused), which reads the pause in database time.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import { statementText } from '../db/single-statement-db.ts'
import type { Claim, ClaimParams } from './claim.ts'
import { type LeaseTuple, parseClaim, toLease } from './claim-answer.ts'
import { pauseLeftMs } from './endless-pause.ts'

// Values: limit, worker id, lease token, lease seconds, mark started, max attempts, the paused
// sender's key, the hold (ms) past which a pause counts.
const CLAIM_PAST_PAUSED = `
  /* prepared outbox_claim_past_paused */
  select mailer.claim_past_paused($1::int, $2::text, $3::uuid, $4::float8, $5::boolean, $6::int, $7::text, $8::float8)::text as claim`

/** claimBatch while MAIL_FROM's pause is known: one statement, which reads the pause in database time. */
export async function claimPastPaused(
  db: Kysely<Database>,
  p: ClaimParams,
  paused: { key: string; holdMs: number },
  token: string,
): Promise<Claim> {
  type Taken = {
    claim: { leases: LeaseTuple[]; nextDueMs: number | null }
    /** "Infinity" (JSON) for a pause to 'infinity'. */
    pausedMs: number | string | null
    probeInMs: number | null
  }
  const { rows } = await statementText<{ claim: string | null }>(db, CLAIM_PAST_PAUSED, [
    p.limit,
    p.workerId,
    token,
    p.leaseSeconds,
    p.markStarted === true,
    p.defaultMaxAttempts,
    paused.key,
    paused.holdMs,
  ])
  const taken = parseClaim<Taken>(rows[0]?.claim, (c) => c.claim.leases)
  const ms = taken?.claim.nextDueMs ?? null
  return {
    leases: (taken?.claim.leases ?? []).map((r) => toLease(r, token)),
    nextDueInMs: ms === null ? null : Math.max(0, ms),
    pausedMs: taken?.pausedMs == null ? null : pauseLeftMs(taken.pausedMs),
    probeInMs: taken?.probeInMs ?? null,
  }
}
