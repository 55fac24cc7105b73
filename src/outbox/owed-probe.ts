// MAIL_FROM's pause-end probe as the database owes it (mailer.mailbox_pacing, sql/0062): owed with a pause, answered by its verdict.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * A pause past the hold was set on `mailbox` (MAIL_FROM's key): its end is probed by one row for
 * every worker. Any probe out is out no more (it met this pause). The pause's row exists: the pause
 * was written first (pauseMailbox). By primary key.
 */
export async function oweProbe(db: Kysely<Database>, mailbox: string): Promise<void> {
  await sql`update mailer.mailbox_pacing set probe_owed = true, probe_id = null, probe_due_at = null
             where mailbox = ${mailbox}`.execute(db)
}

/**
 * The probe `id` is done without meeting the pause again: owed no more. A new pause meanwhile
 * (probe_id reset), or another row named since, is left standing. By primary key.
 */
export async function probeAnswered(
  db: Kysely<Database>,
  p: { mailbox: string; id: string },
): Promise<void> {
  await sql`update mailer.mailbox_pacing set probe_owed = false, probe_id = null, probe_due_at = null
             where mailbox = ${p.mailbox} and probe_id = ${p.id}::bigint`.execute(db)
}
