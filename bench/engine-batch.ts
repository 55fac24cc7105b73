// One drain batch through the engine's own statements, as a file or discard transport runs them: claim, then settle all as sent.
import type { Kysely } from 'kysely'
import type { Database } from '../src/db/schema.ts'
import { claimBatch, type Lease } from '../src/outbox/claim.ts'
import { markSent } from '../src/outbox/mark-sent.ts'

/** claimBatch with the send recorded as started in the claim (no shared limits to wait for). */
export async function claimStarted(
  db: Kysely<Database>,
  limit: number,
  workerId: string,
): Promise<Lease[]> {
  const { leases } = await claimBatch(db, {
    limit,
    workerId,
    leaseSeconds: 60,
    defaultMaxAttempts: 5,
    markStarted: true,
  })
  return leases
}

/** markSent for every lease; throws unless every one was settled (a fenced-out lease is a bench bug). */
export async function settleAllSent(
  db: Kysely<Database>,
  leases: Lease[],
  workerId: string,
  startedAt = new Date(),
) {
  const { sent: settled } = await markSent(
    db,
    leases.map((l) => ({ id: l.id, token: l.token, settlement: { kind: 'sent' }, startedAt })),
    workerId,
  )
  if (settled.size !== leases.length)
    throw new Error(`${workerId}: settled ${settled.size} of ${leases.length}`)
}
