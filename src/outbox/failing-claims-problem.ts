// Readiness' words for a database whose claims have all failed long enough to matter: how long, the SQLSTATE, for a refused privilege the grants, for a wait the lock on the outbox in the way.
import { systemClock, waitAtMost } from '../clock.ts'
import { GRANTS_ADVICE } from '../db/grants-advice.ts'
import {
  describeLocksInTheWay,
  LOCK_TIMEOUT_SQLSTATE,
  MODES_A_WRITE_WAITS_FOR,
  readLocksInTheWay,
} from '../db/lock-in-the-way.ts'
import type { Queryable } from '../db/queryable.ts'
import { PERMISSION_DENIED_SQLSTATE, QUERY_CANCELED_SQLSTATE } from '../db/sqlstate.ts'
import type { ClaimsFailing } from './claim-failures.ts'

/** Claims failing for this long make the database unready (a blip of a few retries does not). */
export const CLAIMS_FAILING_MS = 30_000
/**
 * ... as long as the loop is still retrying them, or the last failure is this recent: a loop that
 * stopped claiming (its queue full, sends blocked) after a failed claim is not failing now.
 */
const CLAIM_FAILURE_FRESH_MS = 15_000
const CLAIM_PERMISSION_ADVICE = `the role in the database's URL lacks a privilege on schema mailer: ${GRANTS_ADVICE} (\`outbox-mailer check-config --connect\` names what it lacks)`

/** How long claims must have failed, and how recent the last failure of a loop no longer retrying. */
export interface ClaimsFailingWindows {
  forMs: number
  freshMs: number
}
export const CLAIMS_FAILING_WINDOWS: ClaimsFailingWindows = {
  forMs: CLAIMS_FAILING_MS,
  freshMs: CLAIM_FAILURE_FRESH_MS,
}

/**
 * Failing for `forMs`, and retried still or the last failure fresh: the claims make the database
 * unready. A retry in flight counts: a claim behind a lock on the outbox waits out the pool's
 * statement_timeout (30 s), twice the freshness, and readiness turned 200 halfway through each.
 */
export function claimsFailingLongEnough(
  failing: ClaimsFailing | null,
  windows: ClaimsFailingWindows = CLAIMS_FAILING_WINDOWS,
): failing is ClaimsFailing {
  return (
    failing !== null &&
    failing.forMs >= windows.forMs &&
    (failing.retrying || failing.lastAgoMs <= windows.freshMs)
  )
}

/**
 * The problem of claims failing long enough (claimsFailingLongEnough). Claims that gave up a wait
 * (the pool's statement_timeout, 57014, or a role's lock_timeout, 55P03) are most often held by a
 * lock on mailer.email_outbox: a LOCK TABLE, VACUUM FULL, ALTER TABLE or CREATE INDEX without
 * CONCURRENTLY (SHARE: a claim writes) in a transaction left open, or queued behind one. Its holder is read (at most `waitMs`) and named, the session to end; the
 * SQLSTATE alone said nothing of it.
 */
export async function failingClaimsProblem(
  failing: ClaimsFailing,
  q: Queryable,
  waitMs: number,
): Promise<string> {
  // The code only: a server's message may quote what it was given.
  const code = failing.sqlstate ? ` (SQLSTATE ${failing.sqlstate})` : ''
  const said = `claims have failed for ${Math.round(failing.forMs / 1000)}s${code}`
  // A role left without one of step 7's grants (the server names the table, not the grant).
  if (failing.sqlstate === PERMISSION_DENIED_SQLSTATE)
    return `${said}: ${CLAIM_PERMISSION_ADVICE}; see the logs`
  if (failing.sqlstate === QUERY_CANCELED_SQLSTATE || failing.sqlstate === LOCK_TIMEOUT_SQLSTATE) {
    const locks = await waitAtMost(
      systemClock,
      readLocksInTheWay(q, 'mailer.email_outbox', MODES_A_WRITE_WAITS_FOR),
      waitMs,
    ).catch(() => [])
    if (locks.length > 0) {
      return `${said}: ${describeLocksInTheWay(locks)} holds them: a LOCK TABLE, VACUUM FULL, ALTER TABLE or CREATE INDEX without CONCURRENTLY in a transaction left open; end it (pg_terminate_backend(pid)) or wait for it; see the logs`
    }
  }
  return `${said}; see the logs`
}
