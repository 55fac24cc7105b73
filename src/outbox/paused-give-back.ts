// A row the gate turned away (its mailbox paused past the hold, or a pacing turn reserved for it): given back uncounted, due when its wait ends.
import type { DeliveryDeps } from './deliver.ts'
import { namedMailboxRefusedReason } from './paused-rows.ts'
import type { Finish, Ready } from './send-attempt.ts'
import type { MailboxPaused } from './send-gate.ts'
import { PACED_CODE, PAUSED_CODE, pausedRowMessage } from './settle-item.ts'

/**
 * Uncounted, like the throttled send that paused the mailbox, and due when the pause ends (or at
 * the pacing turn reserved for it). A row whose last check recorded its start has it undone with
 * the give-back (a retry that is no interrupted send), its interrupted earlier send's mark kept.
 */
export async function giveBackPaused(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  paused: MailboxPaused,
  /** Its interrupted send is still to be looked up: a wait that may run past its expiresAt. */
  lookupWait = false,
): Promise<void> {
  const mailbox = r.mail.from.address
  if (!paused.reserved) d.onMailboxPaused?.(mailbox)
  await finish(r.lease, {
    kind: 'retry',
    ...(paused.reserved
      ? {
          code: PACED_CODE,
          message:
            'not sent yet: its sender mailbox sends at MAILBOX_RATE_PER_MINUTE; due at the turn reserved for it',
        }
      : {
          code: PAUSED_CODE,
          // The pause's cause as the gate read it (a refusal another worker met says so too):
          // the transport's words for MAIL_FROM, else the refusal of the mailbox the row names.
          message: pausedRowMessage(
            d.sender.pauseReason?.(mailbox, paused.refused === true) ??
              (paused.refused ? namedMailboxRefusedReason() : null),
          ),
        }),
    delayMs: paused.pausedForMs,
    throttled: true,
    ambiguous: r.lease.ambiguous,
    ...(lookupWait && { lookupWait: true }),
  })
  await afterGivenBack(d, r, paused.givenBack)
}

/**
 * Runs what a give-back brings about once it is recorded (MailboxPaused.givenBack: a wait that may
 * have ended meanwhile). Failing, the row waits for the time it was given back to, as before.
 */
export async function afterGivenBack(
  d: DeliveryDeps,
  r: Ready,
  givenBack: (() => Promise<void>) | undefined,
): Promise<void> {
  await givenBack?.().catch((err) =>
    d.log.warn('could not bring a row given back due', {
      db: d.dbName,
      outboxId: r.lease.id,
      err,
    }),
  )
}
