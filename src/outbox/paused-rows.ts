// The rows a paused mailbox (one a row names itself) has waiting, moved to its pause's end in one statement.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * mailer.defer_paused_rows (sql/0039): the pending rows keyed `mailbox` (their sender, as the gate
 * keys it) due before its pause ends are due at that end, one write each, none claimed or
 * recorded; rows another transaction holds, and rows whose expiresAt comes first, are left as they
 * are. Returns how many moved.
 */
export async function deferPausedRows(db: Kysely<Database>, mailbox: string): Promise<number> {
  const { rows } = await sql<{ moved: number }>`
    select mailer.defer_paused_rows(${mailbox}) as moved`.execute(db)
  return rows[0]?.moved ?? 0
}
