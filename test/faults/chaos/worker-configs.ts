// The pause mix's rolling deploy: the configuration a worker slot starts with, current or next, until the calm completes the deploy.
import { MAILBOX } from '../harness.ts'
import { LEASES, NEXT_MAIL_FROM, PAUSES } from './settings.ts'

export type Release = 'current' | 'next'

/**
 * The next release changes MAIL_FROM and the lease timing (a longer lease, a slower heartbeat: 8 s
 * and 2 s, the lease longer with CHAOS_GRAPH_TIMEOUT_SECONDS: settings.ts chaosLeases).
 */
const NEXT_ENV = {
  MAIL_FROM: NEXT_MAIL_FROM,
  LEASE_SECONDS: String(LEASES.next),
  HEARTBEAT_SECONDS: String(LEASES.nextHeartbeat),
}

/** Each release's MAIL_FROM, as the workers key its pause (lower case). */
export const MAIL_FROM_OF: Record<Release, string> = { current: MAILBOX, next: NEXT_MAIL_FROM }

/** Each release's lease, for the bounds that wait for a reclaim. */
export const LEASE_SECONDS_OF: Record<Release, number> = {
  current: LEASES.current,
  next: LEASES.next,
}

/**
 * Without CHAOS_PAUSES every worker is current. With it, a slot's starts alternate between the
 * releases (slot 1 starts on the next one), as Fly replaces and restarts machines mid-deploy; once
 * `deployed` (the calm), every start is of the next release.
 */
export function releaseFor(slot: number, startsOfSlot: number, deployed: boolean): Release {
  if (!PAUSES) return 'current'
  if (deployed) return 'next'
  return (slot + startsOfSlot) % 2 === 1 ? 'next' : 'current'
}

export function releaseEnv(base: Record<string, string>, release: Release): Record<string, string> {
  return release === 'next' ? { ...base, ...NEXT_ENV } : base
}
