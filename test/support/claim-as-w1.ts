// The claim of the tests that deliver a row by hand: worker w1's, a 30 s lease, 3 attempts, the rows recorded as started unless told.
import type { Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'

/** `markStarted` false: as a gate that waits claims (Graph), each row's last check left to its send. */
export const claimAsW1 = (
  db: Kysely<Database>,
  o: { limit?: number; markStarted?: boolean } = {},
): Promise<Lease[]> =>
  claimBatch(db, {
    limit: o.limit ?? 1,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: o.markStarted ?? true,
  }).then((c) => c.leases)
