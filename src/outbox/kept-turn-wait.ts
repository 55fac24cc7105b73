// A paced row asking the gate again after a wait without its permit (a heartbeat's late answer) keeps the pacing turn it took while no other was taken or came due: only a throttle, or a probe owed to another row, begun meanwhile holds it.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { mailboxPausedFor } from './mailbox-pause.ts'
import { owedGiveBack } from './owed-give-back.ts'
import type { MailboxPaused } from './send-gate.ts'

type PauseRead = Awaited<ReturnType<typeof mailboxPausedFor>>

/**
 * How long a throttle still holds a mailbox for a request that takes no turn of its own (a lookup;
 * a send whose turn is already taken), by mailboxPausedFor's read (throttledMs: the rule every
 * reader of a pause shares, paused-now.ts): however short, within a turn too, and a wait past one
 * interval (a row an older binary wrote: no turn_interval to tell a pause from a turn). A pacing
 * turn to come is not the request's to wait for.
 */
export function throttleHoldsMs(read: PauseRead): number {
  return read.throttledMs ?? 0
}

/**
 * Row `rowId` took mailbox `mailbox`'s (its key's) pacing turn `turn` (takePacing's) under a permit
 * it gave back to wait, and asks again: it keeps that turn (another would space its send up to an
 * interval out and spend two of the mailbox's turns on one send) while it is still the mailbox's
 * last one taken and the next is not yet due; else 'retake': sent under it, the row would go out
 * with the send of the turn taken since (or due), so it takes a turn again as any row. A throttle
 * set meanwhile is waited out in place up to `holdMs`; past it, or while the probe is owed to
 * another row, the row goes back (MailboxPaused). True: it may send now ('check' with no pacing in
 * force now, `inForceMs` 0: its last check reads the pause again, as any unpaced row's); false:
 * `signal` aborted first.
 * Invariant: the turn of a row that goes back stays spent, as any taken turn whose row is not
 * sent: the mailbox's next send time is kept at or past the end of the throttle that sends it
 * back (pauseMailbox; a probe is owed only after such a pause), so giving the turn back (next_at
 * moved back) could start a send inside that throttle, and a turn taken since by another row
 * leaves none of this row's to give. The mailbox sends fewer than its rate for it, never more.
 */
export async function keptTurnWait(
  o: { db: Kysely<Database>; clock: Clock; read: (mailbox: string) => Promise<PauseRead> },
  mailbox: string,
  turn: string,
  rowId: string | undefined,
  signal: AbortSignal,
  { inForceMs, holdMs }: { inForceMs: number; holdMs: number },
): Promise<boolean | 'check' | 'retake' | MailboxPaused> {
  while (!signal.aborted) {
    const read = await o.read(mailbox)
    if (rowId !== undefined && read.owedProbe !== undefined && read.owedProbe !== rowId)
      return owedGiveBack(o.db, mailbox, rowId, read.waitMs, { refused: read.refused === true })
    const heldMs = throttleHoldsMs(read)
    if (heldMs === 0) {
      if (inForceMs === 0) return 'check'
      // Stale: the next turn due (no rate noted, intervalMs 0, reads none: next_at alone tells) or taken.
      const due = read.waitMs === 0 && read.intervalMs > 0
      return due || read.nextAt !== turn ? 'retake' : true
    }
    // The pause's cause goes with the row (a refusal is no throttle), as waitForPacing's.
    if (heldMs > holdMs)
      return read.refused === true
        ? { pausedForMs: heldMs, refused: true }
        : { pausedForMs: heldMs }
    await o.clock.sleep(Math.max(5, Math.min(heldMs, 5_000)), signal)
  }
  return false
}
