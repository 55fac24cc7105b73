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
