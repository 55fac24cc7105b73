// A lease as a claim hands it over (attempt 1, nothing interrupted, no cancel), for the tests that render or send one without a database.
import type { Lease } from '../../src/outbox/lease.ts'

/** Row 7's first lease, its message and template none, with `over` laid on top. */
export function claimedLease(over: Partial<Lease> = {}): Lease {
  return {
    id: '7',
    token: '00000000-0000-0000-0000-000000000000',
    tenant: 'default',
    attempt: 1,
    correlationId: null,
    message: null,
    template: null,
    sourceRow: null,
    expired: false,
    cancelRequested: false,
    ambiguous: false,
    started: false,
    ...over,
  }
}
