// Lease: one claimed row as its worker holds it, with what the claim told of it.

export interface Lease {
  id: string
  token: string
  tenant: string
  attempt: number
  correlationId: string | null
  message: unknown | null
  template: string | null
  sourceRow: Record<string, unknown> | null
  /** Past expires_at: must be failed with code `expired`, never sent. */
  expired: boolean
  /** Cancelled through the API while pending a claim (or before). */
  cancelRequested: boolean
  /** The previous attempt started a send and never learned its outcome (crash or abort mid-send). */
  ambiguous: boolean
  /**
   * Claimed past its max_attempts with an interrupted send unresolved (its last attempt's send, with
   * lookups on: settle.ts): let through to look that send up, never to send, and counted as no attempt.
   */
  pastAttempts?: boolean
  /** The claim itself recorded the send as started (ClaimParams.markStarted): no startSends needed. */
  started: boolean
}

/**
 * The lease only looks its row's interrupted send up (or, lookups off, names it unresolved), never
 * sends: past its attempts, its cancel requested (cancelled-interrupted.ts), or past its expiresAt
 * (expired-interrupted.ts). Its claim counts no attempt: its settlement (or, its worker stopped,
 * the reclaim: reclaim.ts) gives the count back, and its history entry numbers the attempt whose
 * send it looks up, as that attempt's own outcome (after a counted claim that sent nothing, that
 * claim's: looked-up-attempt.ts). The claim notes the same judgement on the row
 * (lease_lookup_only, sql/0162), which the reclaim reads: keep the two alike
 * (lease.test.ts compares them).
 */
export const lookupOnly = (l: Lease): boolean =>
  l.pastAttempts === true || (l.ambiguous && (l.cancelRequested || l.expired))
