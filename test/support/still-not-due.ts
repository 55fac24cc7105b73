// Waits for rows brought due (or settled) within a bound, and names those that stay pending and due later: what a test of an early wake-up asserts empty.
import type { TestDb } from './db.ts'
import { pollUntil } from './events.ts'

/** Waits (within 10 s) for `rows` due; those still pending and due later then, with seconds to go. */
export async function stillNotDue(
  t: TestDb,
  rows: string[],
): Promise<{ id: string; in_s: number }[]> {
  const notDue = async () =>
    (
      await t.pool.query<{ id: string; in_s: number }>(
        `select id::text, round(extract(epoch from send_at - now()))::int as in_s from mailer.email_outbox
          where id = any($1::bigint[]) and status = 'pending' and send_at > now() order by id`,
        [rows],
      )
    ).rows
  return pollUntil(async () => ((await notDue()).length === 0 ? [] : undefined), 10_000).catch(
    notDue,
  )
}
