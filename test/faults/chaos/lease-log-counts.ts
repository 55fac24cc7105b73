// What the workers' logs say of leases a slow database strained: sends that waited for a late heartbeat answer, give-backs, reclaims.
import type { Mailer } from '../harness.ts'
import { mailerLogEntries } from './mailer-log-entries.ts'

/** Each figure's log message (src/outbox: slot-once-confirmed.ts, unsent-give-up.ts, lease-upkeep.ts). */
const MESSAGES = {
  /** Short of the send's margin until a heartbeat's late answer came: then sent. */
  leaseWaitsSent: 'lease confirmed by a heartbeat’s late answer; sending',
  /** Still ours, not confirmed with the margin in time (the wait ran out): given back uncounted. */
  leaseGiveBacks:
    'lease not confirmed with time for the send (heartbeats slow or failing); not sending',
  /** Confirmed by that late answer, then short of the margin once its slots were taken again: given back uncounted. */
  leaseRetakeGiveBacks:
    "lease confirmed by a heartbeat's late answer ran short of the send's margin while the send took its slots again; not sending",
  /** Ended or lost before the send: given back, counted lost. */
  leasesEndedBeforeSend: 'lease ended or lost before the send; not sending',
} as const

/** The figures over every process's log, and the rows reclaimed (each reclaim line's count). */
export function leaseLogCounts(mailers: readonly Mailer[]): Record<string, number> {
  const counts: Record<string, number> = {
    leaseWaitsSent: 0,
    leaseGiveBacks: 0,
    leaseRetakeGiveBacks: 0,
    leasesEndedBeforeSend: 0,
    reclaimed: 0,
  }
  for (const entry of mailerLogEntries(mailers)) {
    for (const [figure, msg] of Object.entries(MESSAGES)) if (entry.msg === msg) counts[figure]!++
    if (entry.msg === 'reclaimed expired leases')
      counts.reclaimed! += typeof entry.count === 'number' ? entry.count : 0
  }
  return counts
}
