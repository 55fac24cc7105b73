// markWaitingRows: due pending rows that no send can reach now (a refused credential) get its code, once.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * Rows marked per statement at most. A refusal is met once a minute per worker (its cooldown), so a
 * backlog larger than this is named over several minutes, the rows due longest first (the claim's
 * order): each statement stays short, and holds few rows locked from the API's cancel and retry.
 */
export const WAITING_ROWS_PER_MARK = 1_000

/**
 * Due: by the time the statement's snapshot was taken, not its now() (its transaction's start,
 * before the snapshot): a row inserted meanwhile is visible, under the table's highest id the
 * statement returns, and its send_at (its own transaction's start) lies after that now(); read as
 * not due, no mark by id would reach it again. Evaluated once (an initplan), so the claim index's
 * scan can stop there.
 */
const dueBy = sql`(select clock_timestamp())`

/**
 * Sets `last_error_code` / `last_error` to what blocks every send (a credential Entra refuses:
 * `AADSTS700027`, its first line) on due pending rows that do not carry that code yet. The claims
 * a refusal allows meet only WORKER_CONCURRENCY rows a minute, and a row no claim met kept the code
 * of its last attempt, or none: an operator listing pending rows could not tell why they wait.
 * Written once per row and code (a row that carries it is left alone, at the next refusal too),
 * never once per retry: row writes per waiting row stay at one however long the refusal lasts.
 * Touches neither status, send_at, attempts nor history: the row waits as before, and its throttle
 * deadline counts, as before, from a wait a claim recorded. Rows another transaction holds are
 * skipped (the next refusal names them).
 *
 * `aboveId` null: every due row, in claim order (the claim's index; reads every due row that
 * carries the code already, once per refusal). Else only rows with a larger id, in id order (the
 * primary key: rows enqueued since the last mark, however large the backlog). Returns the rows
 * marked and the table's highest id when the statement began ('0' when empty), the next mark's
 * `aboveId`: a row committed later under a lower id waits for the next full mark.
 */
export async function markWaitingRows(
  db: Kysely<Database>,
  blocked: { code: string; message: string },
  aboveId: string | null,
): Promise<{ marked: number; topId: string }> {
  const since = aboveId === null ? sql`` : sql`and id > ${aboveId}::bigint`
  const order = aboveId === null ? sql`priority, send_at, id` : sql`id`
  const { rows } = await sql<{ marked: number; top_id: string }>`
    with picked as (
      select id from mailer.email_outbox
       where status = 'pending' and send_at <= ${dueBy}
         and last_error_code is distinct from ${blocked.code} ${since}
       order by ${order}
       limit ${WAITING_ROWS_PER_MARK}
         for update skip locked
    ), marked as (
      update mailer.email_outbox o
         set last_error_code = ${blocked.code}, last_error = ${blocked.message}
       where o.id in (select id from picked) and o.status = 'pending'
      returning o.id
    )
    select (select count(*) from marked)::int as marked,
           coalesce((select max(id) from mailer.email_outbox), 0)::text as top_id`.execute(db)
  return { marked: rows[0]?.marked ?? 0, topId: rows[0]?.top_id ?? '0' }
}
