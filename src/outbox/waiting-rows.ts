// The statements that give due pending rows no send can reach now (a refused credential, MAIL_FROM's pause) what holds them, once.
import { type Kysely, type RawBuilder, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { PACED_CODE, TOKEN_WAIT_CODE } from './settle-item.ts'
import { type Fit, writingStorable } from './storable-in-encoding.ts'

/**
 * Rows marked per statement at most, those due longest first (the claim's order): each statement
 * stays short, and holds few rows locked from the API's cancel and retry.
 */
export const WAITING_ROWS_PER_MARK = 1_000
/**
 * Due rows a pass statement reads at most, named or not: what bounds its cost however large the
 * backlog (200,000 rows already named were read by every refusal's mark, 0.3 s each), so a pass
 * over a backlog takes one statement per WAITING_ROWS_READ_PER_MARK rows.
 */
export const WAITING_ROWS_READ_PER_MARK = 10_000

/** What holds the rows, and which rows it holds. */
export interface WaitingCause {
  code: string
  message: string
  /**
   * null: every due row (a refused credential blocks every send), replacing any other code. Else
   * MAIL_FROM's pause key: the rows that send from MAIL_FROM (no sender of their own, or its
   * address), which claims leave out while it stands; a code that row's own attempt met (a Graph
   * code, the pause's cause on the row that met it) is kept, a wait named earlier (a refused or
   * unreachable provider, a pacing turn) or none is replaced.
   */
  mailFromKey: string | null
  /**
   * With mailFromKey: the words instead of `message` when that pause keeps Graph's refusal as its
   * cause (pause_reason, sql/0172), which another worker may have met: read in the naming
   * statement, so a worker whose transport knows of no refusal does not tell a throttle.
   */
  refusedMessage?: string
}

/** A place in the claim order (priority, send_at as Postgres prints it, id), where a pass goes on. */
export type ClaimPosition = readonly [priority: number, sendAt: string, id: string]

/**
 * Due: by the time the statement's snapshot was taken, not its now() (its transaction's start,
 * before the snapshot): a row inserted meanwhile is visible, under the table's highest id the
 * statement returns, and its send_at (its own transaction's start) lies after that now(); read as
 * not due, no mark by id would reach it again. Evaluated once (an initplan), so the claim index's
 * scan can stop there.
 */
const dueBy = sql`(select clock_timestamp())`

/** Which of the due pending rows `c` names; `r` the outbox row's alias. */
function heldBy(c: WaitingCause, r: RawBuilder<unknown>): RawBuilder<unknown> {
  if (c.mailFromKey === null) return sql`${r}.last_error_code is distinct from ${c.code}`
  return sql`(${r}.sender_key is null or ${r}.sender_key = ${c.mailFromKey})
    and (${r}.last_error_code is null or ${r}.last_error_code = ${PACED_CODE}
         or ${r}.last_error_code ~ ${TOKEN_WAIT_CODE})`
}

/**
 * The rows of the CTE `picked` named by `c`, fenced by status (primary key); returns their ids.
 * `c.message` is Entra's words (a refusal's first line, which may quote the directory's display
 * name, in any script), as the database's encoding can hold them (storable-in-encoding.ts).
 */
const naming = (c: WaitingCause, fit: Fit) => sql`update mailer.email_outbox o
   set last_error_code = ${c.code}, last_error = ${words(c, fit)}
 where o.id in (select id from picked) and o.status = 'pending'
returning o.id`

/** The words `c` names its rows with: by the pause's cause when it has a refusal's (read once: an initplan). */
const words = (c: WaitingCause, fit: Fit) =>
  c.refusedMessage === undefined || c.mailFromKey === null
    ? sql`${fit(c.message)}`
    : sql`case when exists (select from mailer.mailbox_pacing p
                             where p.mailbox = ${c.mailFromKey} and p.pause_reason = 'refused')
               then ${fit(c.refusedMessage)} else ${fit(c.message)} end`

/** The table's highest id when the statement began ('0' when empty): where the next mark by id starts. */
const topId = sql`coalesce((select max(id) from mailer.email_outbox), 0)::text`

/**
 * One step of a pass over the due pending rows in claim order (email_outbox_claim_idx), from
 * `after` (null: the start): reads at most WAITING_ROWS_READ_PER_MARK of them and sets
 * `last_error_code` / `last_error` to `c` on the first WAITING_ROWS_PER_MARK it holds. Written
 * once per row and code, never once per retry: a row that carries the code is read, not written.
 * Touches neither status, send_at, attempts, send_started_at nor history: the row waits as before,
 * and its throttle deadline counts, as before, from a wait a claim recorded. Rows another
 * transaction holds are skipped (the next pass names them). Returns the rows marked, where the
 * pass goes on (null: it reached the last due row) and the table's highest id when it began.
 */
export async function markWaitingRowsFrom(
  db: Kysely<Database>,
  c: WaitingCause,
  after: ClaimPosition | null,
  bound = { marked: WAITING_ROWS_PER_MARK, read: WAITING_ROWS_READ_PER_MARK },
): Promise<{ marked: number; next: ClaimPosition | null; topId: string }> {
  const from =
    after === null
      ? sql``
      : sql`and (o.priority, o.send_at, o.id) > (${after[0]}::smallint, ${after[1]}::timestamptz, ${after[2]}::bigint)`
  const { rows } = await writingStorable(db, (fit) =>
    sql<{
      marked: number
      next_priority: number | null
      next_send_at: string | null
      next_id: string | null
      top_id: string
    }>`
    with scanned as materialized (
      select o.id, o.priority, o.send_at, o.sender_key, o.last_error_code
        from mailer.email_outbox o
       where o.status = 'pending' and o.send_at <= ${dueBy} ${from}
       order by o.priority, o.send_at, o.id
       limit ${bound.read}
    ), picked as (
      select o.id, s.priority, s.send_at
        from scanned s join mailer.email_outbox o on o.id = s.id
       where o.status = 'pending' and ${heldBy(c, sql`s`)}
       order by s.priority, s.send_at, s.id
       limit ${bound.marked}
         for update of o skip locked
    ), marked as (${naming(c, fit)}), last_read as (
      -- Where the pass goes on: past the last row it named when it named all it may, else past
      -- the last row it read when it read all it may, else nowhere (the end).
      select * from (select p.priority, p.send_at, p.id from picked p
                      where (select count(*) from picked) >= ${bound.marked}
                      order by p.priority desc, p.send_at desc, p.id desc limit 1) a
      union all
      select * from (select s.priority, s.send_at, s.id from scanned s
                      where (select count(*) from picked) < ${bound.marked}
                        and (select count(*) from scanned) >= ${bound.read}
                      order by s.priority desc, s.send_at desc, s.id desc limit 1) b
    )
    select (select count(*) from marked)::int as marked,
           l.priority::int as next_priority, l.send_at::text as next_send_at, l.id::text as next_id,
           ${topId} as top_id
      from (select 1) one left join last_read l on true`.execute(db),
  )
  const r = rows[0]
  const next: ClaimPosition | null =
    r?.next_id != null && r.next_priority !== null && r.next_send_at !== null
      ? [r.next_priority, r.next_send_at, r.next_id]
      : null
  return { marked: r?.marked ?? 0, next, topId: r?.top_id ?? '0' }
}

/**
 * As markWaitingRowsFrom, for the rows with an id above `aboveId` only, in id order (the primary
 * key: rows enqueued since the last mark, however large the backlog). Returns the rows marked and
 * the table's highest id when the statement began ('0' when empty), the next mark's `aboveId`: a
 * row committed later under a lower id waits for the next pass.
 */
export async function markWaitingRowsAbove(
  db: Kysely<Database>,
  c: WaitingCause,
  aboveId: string,
): Promise<{ marked: number; topId: string }> {
  const { rows } = await writingStorable(db, (fit) =>
    sql<{ marked: number; top_id: string }>`
    with picked as (
      select o.id from mailer.email_outbox o
       where o.status = 'pending' and o.send_at <= ${dueBy} and o.id > ${aboveId}::bigint
         and ${heldBy(c, sql`o`)}
       order by o.id
       limit ${WAITING_ROWS_PER_MARK}
         for update of o skip locked
    ), marked as (${naming(c, fit)})
    select (select count(*) from marked)::int as marked,
           ${topId} as top_id`.execute(db),
  )
  return { marked: rows[0]?.marked ?? 0, topId: rows[0]?.top_id ?? '0' }
}
