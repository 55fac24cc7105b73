// The wake-up a row naming a mailbox brings when given back to that mailbox's owed probe while none is out: its owner may take it as the probe now (sql/0133).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * Wakes every listening worker at once when row `rowId`, just given back past `mailbox`'s owed
 * probe (owedGiveBack), is one the probe's owner takes as its probe (claim_past_paused's
 * mail_from_address_probe_row, sql/0133: pending, naming the mailbox, given back for the pause,
 * the probe owed) and no probe is out. The owner's claim may have run while another worker held
 * the row (a rolling deploy's other release), and nothing else brings it again before the row's
 * own time (a minute) or its backstop poll. Off the hot path: only such a give-back; mailbox_pacing
 * and email_outbox by primary key. Invariant: wakes, never moves a row.
 */
export async function wakeOwedProbeOwner(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
): Promise<void> {
  await sql`select pg_notify('mailer_outbox', '')
      from mailer.mailbox_pacing m
      join mailer.email_outbox o on o.id = ${rowId}::bigint
     where m.mailbox = ${mailbox} and m.probe_owed
       and o.status = 'pending' and o.sender_key = m.mailbox and o.last_error_code = 'mailbox_paused'
       and not exists (select from mailer.email_outbox p where p.id = m.probe_id and p.status = 'sending')`.execute(
    db,
  )
}
