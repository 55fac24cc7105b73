// Readiness' words for a database whose claims have all failed long enough to matter: how long, the SQLSTATE, and for a refused privilege the grants.
import { GRANTS_ADVICE } from '../db/grants-advice.ts'
import { PERMISSION_DENIED_SQLSTATE } from '../db/sqlstate.ts'
import type { ClaimsFailing } from './claim-failures.ts'

/** Claims failing for this long make the database unready (a blip of a few retries does not). */
export const CLAIMS_FAILING_MS = 30_000
/**
 * ... as long as the last failure is this recent: a failing loop retries within 5 s. A loop that
 * stopped claiming (its queue full, sends blocked) after a failed claim is not failing now.
 */
const CLAIM_FAILURE_FRESH_MS = 15_000
const CLAIM_PERMISSION_ADVICE = `the role in the database's URL lacks a privilege on schema mailer: ${GRANTS_ADVICE} (\`outbox-mailer check-config --connect\` names what it lacks)`

/** The problem, or null while the claims' failures are too short or too old to make it unready. */
export function failingClaimsProblem(failing: ClaimsFailing | null): string | null {
  if (!failing || failing.forMs < CLAIMS_FAILING_MS || failing.lastAgoMs > CLAIM_FAILURE_FRESH_MS)
    return null
  // The code only: a server's message may quote what it was given.
  const code = failing.sqlstate ? ` (SQLSTATE ${failing.sqlstate})` : ''
  // A role left without one of step 7's grants (the server names the table, not the grant).
  const grant =
    failing.sqlstate === PERMISSION_DENIED_SQLSTATE ? `: ${CLAIM_PERMISSION_ADVICE}` : ''
  return `claims have failed for ${Math.round(failing.forMs / 1000)}s${code}${grant}; see the logs`
}
