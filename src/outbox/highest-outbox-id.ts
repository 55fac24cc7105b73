// The outbox's highest row id now: where a bulk cancel or retry loop that begins now stops.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'

/** The highest id of any row, null for an empty outbox; the primary key's last entry (one index page). */
export async function highestOutboxId(db: Kysely<Database>): Promise<string | null> {
  const r = await db
    .selectFrom('mailer.email_outbox')
    .select((eb) => eb.fn.max('id').as('id'))
    .executeTakeFirst()
  return r?.id == null ? null : String(r.id)
}
