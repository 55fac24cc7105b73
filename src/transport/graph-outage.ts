// What an outage of Graph is: its causes, the codes rows wait under, its back-off, and how readiness words it.

export const GRAPH_OUTAGE_CAUSES = ['unreachable', 'unauthorized'] as const
export type GraphOutageCause = (typeof GRAPH_OUTAGE_CAUSES)[number]

/**
 * The codes rows wait under while Graph is out of reach or refuses every token. Nothing of theirs
 * reached Graph (or it answered for the app, not the row): uncounted, like the token waits, and
 * recorded once per run (outbox/settle-item.ts TOKEN_WAIT_CODE knows them).
 */
export const GRAPH_UNREACHABLE_CODE = 'graph_unreachable'
export const GRAPH_UNAUTHORIZED_CODE = 'graph_unauthorized'

/**
 * After a failure no request goes to Graph for this long, doubling with each failed probe up to the
 * cap, reset by any answer: every worker of the process waits on this one delay, and when it has
 * passed one request (the probe) goes while the others wait for its answer.
 */
const BACKOFF_FIRST_MS = 5_000
const BACKOFF_MAX_MS = 300_000
/**
 * An outage no request has met for this long is no longer reported (readiness, the gauge): with
 * no mail due nothing probes, and Graph may well be back.
 */
export const STALE_MS = 30 * 60_000

export interface Outage {
  cause: GraphOutageCause
  /** What the last failure said: an errno (ECONNREFUSED) or Graph's 401 code. */
  code: string
  message: string
  httpStatus?: number | undefined
  /** Wall time the outage began: shown (readiness), never subtracted. */
  since: number
  /**
   * Monotonic readings (monotonicNow) of its start and of the failure its back-off runs from: a
   * wall clock stepped back would stretch the back-off (every row's wait) by the step.
   */
  sinceMono: number
  at: number
  holdOffMs: number
  streak: number
}

/** The back-off after the `streak`-th failure in a row. */
export function holdOffMs(streak: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(streak - 1, 20))
}

/** For readiness: what keeps Graph away and what to check (no address, no secret). */
export function outageWarning(outage: Outage): string {
  const since = new Date(outage.since).toISOString()
  const every = `one request tries again every ${Math.round(BACKOFF_MAX_MS / 60_000)} minutes at most`
  return outage.cause === 'unreachable'
    ? `graph unreachable since ${since} (${outage.code}): mail waits, uncounted, and ${every}; check this host's egress, DNS, proxy and CA trust for GRAPH_API_URL`
    : `graph refuses this app's tokens since ${since} (HTTP 401 ${outage.code}): mail waits, uncounted, and ${every}; check the app registration (GRAPH_CLIENT_ID in GRAPH_TENANT_ID) and its credential`
}
