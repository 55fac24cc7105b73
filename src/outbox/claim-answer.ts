// The claim's answer read: its JSON text into leases, a source row's numbers kept as Postgres wrote them.
import type { Lease } from './claim.ts'
import { holdsNumber, parseExactNumbers } from './exact-json.ts'

// One claimed row as the claim's JSON array returns it (one JSON.parse per batch, not per field):
// [id, tenant, attempt, maxAttempts, correlationId, message, template, sourceRow, expired,
//  cancelRequested, ambiguous, started]. maxAttempts (the row's, or the claim's default) tells a
// lease past it (Lease.pastAttempts); settlement and reclaim judge the row's own in SQL.
export type LeaseTuple = [
  string,
  string,
  number,
  number,
  string | null,
  unknown | null,
  string | null,
  Record<string, unknown> | null,
  boolean,
  boolean,
  boolean,
  boolean,
]

/**
 * The claim's JSON text parsed. A template renders its source row's numbers as Postgres wrote
 * them (numeric's 12.50, a bigint past 2^53), which JSON.parse would change (12.5): a claim whose
 * source rows hold numbers takes them from parseExactNumbers, one more pass over its text. Rows
 * without a source row (enqueue_email's) never pay it.
 */
export function parseClaim<T>(
  text: string | null | undefined,
  leasesOf: (c: T) => LeaseTuple[],
): T | null {
  if (text === null || text === undefined) return null
  const claim = JSON.parse(text) as T
  const leases = leasesOf(claim)
  if (!anyNumberIn(leases)) return claim
  const exact = parseExactNumbers(text) as T | null
  if (exact === null) return claim
  const exactLeases = leasesOf(exact)
  for (const [i, lease] of leases.entries()) lease[7] = exactLeases[i]?.[7] ?? lease[7]
  return claim
}

export function toLease(r: LeaseTuple, token: string): Lease {
  return {
    id: r[0],
    token,
    tenant: r[1],
    attempt: r[2],
    correlationId: r[4],
    message: r[5],
    template: r[6],
    sourceRow: r[7],
    expired: r[8],
    cancelRequested: r[9],
    ambiguous: r[10],
    started: r[11],
    pastAttempts: r[10] && r[2] > r[3],
  }
}

/**
 * Whether any lease's source row holds a number (holdsNumber). A loop, with a row without a source
 * row (enqueue_email's) passed over before any array is made: it runs on every pickup's way to its send.
 */
function anyNumberIn(leases: readonly LeaseTuple[]): boolean {
  for (let i = 0; i < leases.length; i++) {
    const source = leases[i]![7]
    if (source !== null && holdsNumber(source)) return true
  }
  return false
}
