// The statements of mailer.sender_mailboxes (sql/0056): the mailboxes this database's rows may have gone from, noted where a sender changes.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { parseDefaultFrom } from './render.ts'
import { mailboxKey } from './send-gate.ts'

/**
 * How many of the noted mailboxes an interrupted send's lookup asks besides its row's own, the
 * most recently noted first: each is two provider reads for every row not found in its own.
 */
export const PAST_SENDERS_ASKED = 5

/**
 * Notes `mailbox` (a worker's MAIL_FROM) as one its rows go from: run before the worker's first
 * claim, so no row it sends from MAIL_FROM can be looked up after a change without it, and again as
 * the worker stops, so its time is when a row last went from it: a MAIL_FROM a redeploy replaced
 * is then among the most recently noted (the ones asked), however many template edits were noted
 * while it was in use. Twice per worker and database, off the hot path (a template's replaced
 * from_address is noted by a trigger, at the edit: when its rows stopped going from it).
 */
export async function noteSenderMailbox(db: Kysely<Database>, mailbox: string): Promise<void> {
  // Invariant: one entry per mailbox key (the table's primary key); a note again moves it first.
  await sql`insert into mailer.sender_mailboxes (mailbox) values (${mailboxKey(mailbox)})
            on conflict (mailbox) do update set noted_at = now()`.execute(db)
}

/** The noted mailboxes other than `own` (the row's sender now), most recently noted first. */
export async function pastSenderMailboxes(
  db: Kysely<Database>,
  own: string,
  limit = PAST_SENDERS_ASKED,
): Promise<string[]> {
  // A handful of rows (one per sender ever configured): read whole, no index needed but the key's.
  const { rows } = await sql<{ mailbox: string }>`
    select mailbox from mailer.sender_mailboxes where mailbox <> ${mailboxKey(own)}
     order by noted_at desc, mailbox limit ${limit}`.execute(db)
  return rows.map((r) => r.mailbox)
}

/** MAIL_FROM's address; null when unset or unreadable (its rows then fail to render: none sent). */
export function mailFromAddress(mailFrom: string | null): string | null {
  try {
    return mailFrom === null ? null : parseDefaultFrom(mailFrom).address
  } catch {
    return null
  }
}
