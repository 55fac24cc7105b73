// A row (or its interrupted send's lookup) held for a mailbox's owed probe, given back: for how long, and what brings it due sooner.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import { owedProbeEndsInMs, owedRowDueIfProbeEnded } from './owed-probe-end.ts'
import { forgetEndedOwedProbeLookup, noteOwedProbeLookup } from './owed-probe-lookups.ts'
import { wakeOwedProbeOwner } from './owed-probe-owner-wake.ts'
import type { MailboxPaused } from './send-gate.ts'

// Such a row goes back this much later at least, or when the probe out surely ends
// (owedProbeEndsInMs; its answer or clear brings the row due, 0092).
const OWED_PROBE_RETRY_MS = 1_000
// While none is out, this long for a row the owed state's end brings due at once (a second before:
// claimed once a second until the probe went), which the owner may take as the probe (sql/0133); a
// row of MAIL_FROM's own goes back to its pause's end (owedProbeEndsInMs). The bound is for what
// ends the owed state unseen: a row goes again at the latest a minute later.
const OWED_NONE_OUT_MS = 60_000

/**
 * Row `rowId`, naming `mailbox` (its key) whose probe is owed, goes back, to be sent after the
 * probe's answer (`waitMs`: the pause still standing); once recorded, `givenBack` brings it due
 * if the owed state ended meanwhile. `noted`: the owed state's end brings it due by its note
 * (owedLookupGiveBack). `refused`: the pause standing is Graph refusing the mailbox (the read's,
 * sql/0172), which the row says, as a row the pause itself sends back does.
 */
export async function owedGiveBack(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
  waitMs: number,
  { noted = false, refused = false }: { noted?: boolean; refused?: boolean } = {},
): Promise<MailboxPaused> {
  const ends = (await owedProbeEndsInMs(db, mailbox, rowId, { ms: OWED_NONE_OUT_MS, noted })) ?? 0
  const pausedForMs = Math.max(waitMs, OWED_PROBE_RETRY_MS, ends)
  return {
    pausedForMs,
    ...(refused && { refused: true as const }),
    givenBack: async () => {
      await owedRowDueIfProbeEnded(db, mailbox, rowId)
      // A lookup's row names another mailbox: never the probe (its note brings it due instead).
      if (!noted) await wakeOwedProbeOwner(db, mailbox, rowId)
    },
  }
}

/**
 * An interrupted send's lookup of row `rowId` held for `mailbox`'s owed probe, given back as
 * owedGiveBack gives back a send. The row names another mailbox, so 0092's search by sender does
 * not see it: noted, and the owed state's end brings it due (sql/0112, 0116).
 */
export async function owedLookupGiveBack(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
  waitMs: number,
  { refused = false }: { refused?: boolean } = {},
): Promise<MailboxPaused> {
  const back = await owedGiveBack(db, mailbox, rowId, waitMs, { noted: true, refused })
  return {
    pausedForMs: back.pausedForMs,
    ...(back.refused && { refused: true as const }),
    givenBack: async () => {
      await noteOwedProbeLookup(db, mailbox, rowId)
      await back.givenBack?.()
      // The end came before the note (its trigger saw none): the note goes with its cause.
      await forgetEndedOwedProbeLookup(db, mailbox, rowId)
    },
  }
}
