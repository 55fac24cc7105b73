// The send gate a claim round's deliveries pause through: a pause past a row's hold is told to the claims as well.
import type { Logger } from '../log.ts'
import type { DefaultSenderPause } from './default-sender-pause.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import { oweProbe } from './owed-probe.ts'
import { deferPausedRows } from './paused-rows.ts'
import { mailboxKey, type SendGate } from './send-gate.ts'
import type { SideStatements } from './side-statements.ts'

export function gateTellingPauses(
  d: DrainerDeps,
  pause: DefaultSenderPause,
  log: Logger,
  besides: SideStatements,
): SendGate {
  // A send of this worker's that pauses MAIL_FROM (the probe meeting the refusal again) says so
  // too, as a row another worker's pause sends back does (onMailboxPaused). One that pauses a
  // mailbox a row names itself, past a row's hold, moves that mailbox's waiting rows to the
  // pause's end, each told why (the throttle, or the refusal with Graph's code) in its one write,
  // rather than leaving them to be claimed and given back; not awaited: the send's slot is not
  // held for it (the stop's is: `besides`), and a failure leaves the rows as they were.
  const gate: SendGate = {
    ...d.gate,
    pause: async (mailbox, ms, refused) => {
      await d.gate.pause(mailbox, ms, refused)
      // A pause rows wait out in place (a 429's second or two) changes nothing for the claims.
      const hold = d.gate.pausedBeyondMs
      if (hold === undefined || ms <= hold) return
      pause.mailboxPaused(mailbox)
      const key = mailboxKey(mailbox)
      // Owed for every worker, before the row that met the pause is settled.
      if (key === pause.key) return oweProbe(d.db, key)
      void besides.track(
        deferPausedRows(d.db, key, refused).catch((err) =>
          log.warn('could not move a paused mailbox’s rows to its pause’s end', { err }),
        ),
      )
    },
  }
  return gate
}
