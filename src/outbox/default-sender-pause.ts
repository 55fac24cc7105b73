// MAIL_FROM's pause as one drainer knows it: whether its claims leave MAIL_FROM's rows out, and the one row that probes the mailbox after it.
import type { Lease } from './claim.ts'
import { parseDefaultFrom } from './render.ts'
import { mailboxKey, type SendGate } from './send-gate.ts'

export interface DefaultSenderPause {
  /** MAIL_FROM's pause key, as the gate keys a mailbox; null when nothing is ever left out. */
  readonly key: string | null
  /** The claim's pausedSender, while MAIL_FROM's pause is known. */
  claimParam(): { key: string; holdMs: number } | undefined
  /** The claim's mailFromGuard, while it is not: the database may owe the pause or its probe (sql/0062). */
  guardParam(): { key: string; holdMs: number } | undefined
  /** Rows the next claim may take, given `room`: 0 while the probe after a pause is out. */
  limit(room: number): number
  /**
   * What a claim answered: `pausedMs` (undefined when it was not asked), its rows, and `probeInMs`
   * (the pause over, MAIL_FROM's first row not due yet: its rows name other senders).
   */
  claimed(
    pausedMs: number | null | undefined,
    leases: readonly Lease[],
    probeInMs?: number | null,
  ): void
  /** A row went back unsent because `mailbox` stands paused (not for a pacing turn). */
  mailboxPaused(mailbox: string): void
  /**
   * A lease is finished with (settled or lost; `sent`: its send was asked of Graph): true when it was
   * the probe, sent, and met no pause again: its answer is to be recorded (probeAnswered), and no
   * claim runs until answered(lease) says it is. A probe settled unsent (cancelled or expired before
   * its send, lost, given back) is no verdict of the mailbox: paused again, the next claim probes anew.
   */
  done(lease: Lease, sent?: boolean): boolean
  /** The probe `lease`'s answer is recorded (or failed to be): back to the usual claim, unless paused since. */
  answered(lease: Lease): void
}

/** MAIL_FROM's pause key, as the gate keys a mailbox; null when the gate never pauses or none is set. */
export function mailFromPauseKey(gate: SendGate, mailFrom: string | null): string | null {
  return mailFrom !== null && gate.pausedBeyondMs !== undefined
    ? mailboxKey(parseDefaultFrom(mailFrom).address)
    : null
}

/**
 * States: unpaused (the usual claim); paused (set when a row went back for MAIL_FROM's pause: the
 * claims run mailer.claim_past_paused, sql/0039, which reads the pause in database time and leaves
 * MAIL_FROM's rows unclaimed while it stands); probing (that claim found the pause over and took
 * one row, MAIL_FROM's first due row since sql/0041 (none due, one naming MAIL_FROM's address since
 * sql/0082), not a row naming another sender: no other
 * claim until that row is done, so a mailbox still refused
 * costs one row per pause, not a batch of give-backs). Paused still when that claim found none of
 * MAIL_FROM's rows due but one pending, however far off (sql/0051, 0057: the rows given back to the
 * pause's end, due at it plus their settlement's latency, or scheduled later): the probe stays owed
 * and the claim when that row is due probes. Back to unpaused when the probe is done without
 * meeting the pause again and its answer is recorded, or when the pause's end finds nothing of MAIL_FROM's pending. The
 * pause and the probe it owes are the database's (sql/0062): an unpaused claim reads them first
 * (guardParam) and, owed, goes paused without claiming, so a worker started since, or one that
 * never met the pause, waits as this one does; and one probe is out for every worker, the others'
 * claims waiting for its verdict (probeInMs). A gate that never pauses (file, discard), or no
 * MAIL_FROM, stays unpaused.
 */
export function createDefaultSenderPause(
  gate: SendGate,
  mailFrom: string | null,
): DefaultSenderPause {
  const holdMs = gate.pausedBeyondMs
  const key = mailFromPauseKey(gate, mailFrom)
  let state: 'unpaused' | 'paused' | 'probing' = 'unpaused'
  let probe: Lease | null = null
  return {
    key,
    claimParam: () =>
      state === 'paused' && key !== null && holdMs !== undefined ? { key, holdMs } : undefined,
    guardParam: () =>
      state === 'unpaused' && key !== null && holdMs !== undefined ? { key, holdMs } : undefined,
    limit: (room) => (state === 'probing' && probe !== null ? 0 : room),
    claimed(pausedMs, leases, probeInMs = null) {
      if (pausedMs !== null || state !== 'paused' || probeInMs !== null) return
      probe = leases[0] ?? null
      state = probe === null ? 'unpaused' : 'probing'
    },
    mailboxPaused(mailbox) {
      if (key !== null && mailboxKey(mailbox) === key) state = 'paused'
    },
    done(lease, sent = false) {
      if (lease !== probe) return false
      // Kept while its answer is recorded (limit 0): a claim before that reads the probe still owed
      // and names another row as the probe, which the answer then no longer matches.
      if (state === 'probing' && sent) return true
      probe = null
      if (state === 'probing') state = 'paused'
      return false
    },
    answered(lease) {
      if (lease !== probe) return
      probe = null
      if (state === 'probing') state = 'unpaused'
    },
  }
}
