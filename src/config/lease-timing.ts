// The heartbeat period against the lease and the Graph request timeout: a send starts only with its timeout of lease left.
import { type Accepted, type EnvValues, LONGEST_LEASE_SECONDS } from './env-schema.ts'

/** A Graph send starts only with its request timeout and this much more of its lease left. */
export const SEND_LEASE_MARGIN_MS = 1_000
/** What a heartbeat's statement may take to answer before the lease it extends is short of a send. */
export const HEARTBEAT_ANSWER_MS = 1_000
/** What a lease keeps past a send's timeout between two heartbeats: the margin and the beat's answer. */
const SLACK_SECONDS = (SEND_LEASE_MARGIN_MS + HEARTBEAT_ANSWER_MS) / 1000

/**
 * HEARTBEAT_SECONDS, by default a third of the lease, and the problems with it. With Graph
 * (`timeoutSeconds`), a lease keeps LEASE_SECONDS minus HEARTBEAT_SECONDS (less the beat's answer)
 * between two heartbeats that work; a send must start with its timeout and the margin left, or a
 * lease could end mid-request once heartbeats fail and another worker's reclaim send the row again.
 * So HEARTBEAT_SECONDS is at most LEASE_SECONDS minus the timeout minus 2: the default is shortened
 * to it (every lease and timeout accepted alone keep working), a value set past it is refused.
 */
export function heartbeatSetting(
  e: EnvValues,
  ok: Accepted,
  leaseSeconds: number,
  timeoutSeconds: number | null,
): { heartbeatSeconds: number; problems: string[] } {
  const slack = SLACK_SECONDS
  const longest = timeoutSeconds === null ? null : leaseSeconds - timeoutSeconds - slack
  const third = Math.max(1, Math.floor(leaseSeconds / 3))
  const heartbeatSeconds =
    e.HEARTBEAT_SECONDS ?? (longest === null ? third : Math.max(1, Math.min(third, longest)))
  const problems: string[] = []
  // The tighter of the two bounds is the one named: told half the lease while the timeout needs
  // less, a user who set half was refused again.
  const timed =
    longest !== null &&
    timeoutSeconds !== null &&
    timeoutSeconds * 2 <= leaseSeconds &&
    longest * 2 < leaseSeconds &&
    ok('LEASE_SECONDS', 'HEARTBEAT_SECONDS', 'GRAPH_REQUEST_TIMEOUT_SECONDS')
  // A timeout itself refused (past half the lease) is named by requestTimeoutProblem. A heartbeat
  // past half the lease cannot be held to it, but no timeout accepted lets the heartbeat be more
  // than LEASE_SECONDS minus half of it minus 2: that is named in the same run, or a user who set
  // half for each was refused again, for the heartbeat. Within half, a timeout exists that keeps it.
  const timeoutRefused =
    timeoutSeconds !== null &&
    timeoutSeconds * 2 > leaseSeconds &&
    ok('LEASE_SECONDS', 'HEARTBEAT_SECONDS', 'GRAPH_REQUEST_TIMEOUT_SECONDS')
  if (timeoutRefused && heartbeatSeconds * 2 > leaseSeconds) {
    const most = Math.floor(leaseSeconds / 2)
    const beside = leaseSeconds - most - slack
    problems.push(
      `HEARTBEAT_SECONDS: must be at most half of LEASE_SECONDS, and at most LEASE_SECONDS minus GRAPH_REQUEST_TIMEOUT_SECONDS minus ${slack} (${Math.max(0, beside)} with ${leaseSeconds} and the most GRAPH_REQUEST_TIMEOUT_SECONDS may be, ${most}; ${heartbeatSeconds} set); ${waysOut(leaseSeconds, timeoutSeconds, heartbeatSeconds, Math.max(0, beside), slack)}`,
    )
  } else if (
    !timed &&
    heartbeatSeconds * 2 > leaseSeconds &&
    ok('LEASE_SECONDS', 'HEARTBEAT_SECONDS')
  ) {
    problems.push('HEARTBEAT_SECONDS: must be at most half of LEASE_SECONDS')
  } else if (
    longest !== null &&
    heartbeatSeconds > longest &&
    timeoutSeconds !== null &&
    timeoutSeconds * 2 <= leaseSeconds &&
    ok('LEASE_SECONDS', 'HEARTBEAT_SECONDS', 'GRAPH_REQUEST_TIMEOUT_SECONDS')
  ) {
    problems.push(
      `HEARTBEAT_SECONDS: must be at most LEASE_SECONDS minus GRAPH_REQUEST_TIMEOUT_SECONDS minus ${slack} (${Math.max(0, longest)} with ${leaseSeconds} and ${timeoutSeconds}; ${heartbeatSeconds} set): a Graph send starts only with its request timeout and 1 s more of its lease left, and between two heartbeats a lease keeps LEASE_SECONDS minus HEARTBEAT_SECONDS, less 1 s for the heartbeat's answer; ${waysOut(leaseSeconds, timeoutSeconds, heartbeatSeconds, longest, slack)}`,
    )
  }
  return { heartbeatSeconds, problems }
}

/**
 * GRAPH_REQUEST_TIMEOUT_SECONDS past half the lease (a request may outlive neither its lease nor a
 * heartbeat's save), named with the most it may be: with a HEARTBEAT_SECONDS set within half the
 * lease, what heartbeatSetting then holds it to, when that is less (told half, a user who set half
 * was refused again, for the heartbeat).
 */
export function requestTimeoutProblem(
  e: EnvValues,
  ok: Accepted,
  leaseSeconds: number,
  timeoutSeconds: number,
): string | null {
  if (timeoutSeconds * 2 <= leaseSeconds || !ok('GRAPH_REQUEST_TIMEOUT_SECONDS', 'LEASE_SECONDS')) {
    return null
  }
  const half = Math.floor(leaseSeconds / 2)
  const slack = SLACK_SECONDS
  const beat = e.HEARTBEAT_SECONDS
  const byBeat =
    beat !== undefined && beat * 2 <= leaseSeconds && ok('HEARTBEAT_SECONDS')
      ? leaseSeconds - beat - slack
      : null
  const rule = 'GRAPH_REQUEST_TIMEOUT_SECONDS: must be at most half of LEASE_SECONDS'
  return byBeat !== null && byBeat < half
    ? `${rule}, and at most LEASE_SECONDS minus HEARTBEAT_SECONDS minus ${slack} (${byBeat} with ${leaseSeconds} and ${beat}; ${timeoutSeconds} set)`
    : `${rule} (${half} with ${leaseSeconds}; ${timeoutSeconds} set)`
}

/**
 * Each setting that alone makes the rule hold, with its number: a shorter timeout only while the
 * heartbeat is within half the lease, a longer lease only up to LEASE_SECONDS's largest.
 */
function waysOut(
  lease: number,
  timeout: number,
  heartbeat: number,
  longest: number,
  slack: number,
): string {
  const ways = [`set HEARTBEAT_SECONDS to ${longest} or less (or leave it unset)`]
  const timeoutAtMost = lease - heartbeat - slack
  if (heartbeat * 2 <= lease && timeoutAtMost >= 1) {
    ways.push(`GRAPH_REQUEST_TIMEOUT_SECONDS to ${timeoutAtMost} or less`)
  }
  // Twice the timeout too: a timeout itself refused (past half the lease) is then taken as well.
  const leaseAtLeast = Math.max(heartbeat + timeout + slack, heartbeat * 2, timeout * 2)
  if (leaseAtLeast <= LONGEST_LEASE_SECONDS) ways.push(`LEASE_SECONDS to ${leaseAtLeast} or more`)
  const last = ways.pop()
  return ways.length === 0 ? `${last}` : `${ways.join(', ')}, or ${last}`
}
