// Wakes every listening worker; the notification is sent when the caller's transaction commits.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/** The same empty hint the insert trigger sends: data never travels in a notification. */
export async function wakeWorkers(db: Kysely<Database>): Promise<void> {
  await sql`select pg_notify('mailer_outbox', '')`.execute(db)
}
