// An interrupted send's lookup waiting for a mailbox's owed probe, noted so that the owed state's end brings its row due (sql/0112; one trigger since 0116).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * Row `rowId`, just given back because its lookup may not ask `mailbox` while that mailbox's probe
 * is owed: noted for the owed state's end, which brings it due with a wake-up (sql/0116: 0092's trigger).
 * Off the hot path: only such a give-back writes it, by primary key; the trigger forgets the note.
 */
export async function noteOwedProbeLookup(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
): Promise<void> {
  await sql`insert into mailer.owed_probe_lookups (mailbox, outbox_id) values (${mailbox}, ${rowId}::bigint)
            on conflict do nothing`.execute(db)
}

/**
 * Forgets the note of row `rowId` for `mailbox` once that mailbox's probe is owed no more and the
 * row waits no more (its give-back found the end and brought it due): kept, it outlived its cause,
 * and a later pause of the row (a throttle of its own mailbox) was cut short by heldOwedRowsDue,
 * its row claimed and given back at every poll without LISTEN. A note whose row still waits (locked
 * as the give-back's check ran) stays for heldOwedRowsDue. By primary key; off the hot path.
 */
export async function forgetEndedOwedProbeLookup(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
): Promise<void> {
  await sql`delete from mailer.owed_probe_lookups w
             where w.mailbox = ${mailbox} and w.outbox_id = ${rowId}::bigint
               and not exists (select from mailer.mailbox_pacing m where m.mailbox = w.mailbox and m.probe_owed)
               and not exists (select from mailer.email_outbox c
                                where c.id = w.outbox_id and c.status = 'pending' and c.send_at > now()
                                  and c.last_error_code = 'mailbox_paused')`.execute(db)
}
