// The rows a bulk action matches: their ids (status by status, through each status's index) and their count.
import {
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type RawBuilder,
  type SqlBool,
  sql,
} from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'
import { countDelivered } from './delivered-count.ts'
import { DELIVERY_POSSIBLE_COLUMNS, deliveryPossibleOf } from './delivery-possible.ts'

/** A condition on outbox rows, as the bulk actions build theirs. */
export type Where = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) => Expression<SqlBool>

/**
 * A statement selecting the ids of up to `limit` rows matching `where` among rows in `statuses`,
 * lowest or highest first. For each status, its matching rows in id order through the partial index
 * that holds that status (failed, cancelled: email_outbox_failed_cancelled_idx (status, id), 0009,
 * or with a tenant in `where` email_outbox_tenant_failed_cancelled_idx (tenant, status, id), 0085;
 * sending: email_outbox_sending_idx (id); pending: email_outbox_claim_idx, sorted, as no pending
 * index is in id order; finished rows with a correlation id in `where`:
 * email_outbox_correlation_idx (correlation_id, id), 0010; with a template:
 * email_outbox_template_idx (template, id), 0045), then the first `limit` of them. So the
 * cost follows the rows in those statuses, never the table: in id order over the primary key
 * instead, which Postgres picks when it guesses matches are spread evenly, a batch of pending rows
 * at the end of a million kept ones read them all. Takes no locks.
 */
export function candidateIds(
  db: Kysely<Database>,
  statuses: readonly OutboxStatus[],
  where: Where,
  limit: number,
  order: 'asc' | 'desc',
  /** A list page's pending branch built on `sorted` (pending-near.ts), in place of `sorted` alone. */
  pendingBranch?: (sorted: Expression<unknown>) => RawBuilder<{ id: string }>,
  /**
   * A filter's mayHaveBeenDelivered, left out of `where` and checked on a failed or cancelled
   * branch's rows in id order, after `where`'s: its history probe (delivery-possible.ts) then
   * runs on the rows up to the `limit`th match, not on every row the status's index holds before
   * a sort (28,880 buffers against 1,448 for a retry's 1,000 of 8,000 failed rows).
   */
  delivered?: boolean,
): RawBuilder<{ id: string }> | null {
  const branches = statuses.map((status) => {
    const sorted = db
      .selectFrom('mailer.email_outbox')
      .select('id')
      .where((eb) => eb.and([eb('status', '=', status), where(eb)]))
      // id + 0 for pending: ordered by the bare id, the planner may walk the primary key instead.
      .orderBy(status === 'pending' ? sql`id + 0` : sql`id`, order)
      .limit(limit)
    if (delivered !== undefined && (status === 'failed' || status === 'cancelled'))
      return deliveredLate(db, status, where, delivered, limit, order)
    if (status !== 'pending' || pendingBranch === undefined)
      return sql`select id from (${sorted}) as ${sql.id(status)}`
    return pendingBranch(sorted)
  })
  if (branches.length === 0) return null
  return sql<{ id: string }>`
    select id from (${sql.join(branches, sql` union all `)}) as candidates
     order by id ${sql.raw(order)}
     limit ${limit}`
}

/**
 * candidateIds' branch of `status` with mayHaveBeenDelivered `delivered` checked late: the rows
 * matching `where` in id order (the status's index, sorted), fenced (offset 0: the check stays
 * out of the scan), carrying the columns the check reads, then the check, then the limit (the
 * outer order is the fenced one's: no sort more, and the lowest ids by construction).
 */
function deliveredLate(
  db: Kysely<Database>,
  status: 'failed' | 'cancelled',
  where: Where,
  delivered: boolean,
  limit: number,
  order: 'asc' | 'desc',
): RawBuilder<{ id: string }> {
  const inOrder = db
    .selectFrom('mailer.email_outbox')
    .select([...DELIVERY_POSSIBLE_COLUMNS])
    .where((eb) => eb.and([eb('status', '=', status), where(eb)]))
    .orderBy(sql`id`, order)
    .offset(0)
  const check = deliveryPossibleOf('late')
  return sql<{ id: string }>`select id from (select late.id from (${inOrder}) as late
     where ${delivered ? check : sql`not ${check}`}
     order by late.id ${sql.raw(order)}
     limit ${limit}) as ${sql.id(status)}`
}

/**
 * The next batch of a bulk action: the ids of up to `limit` rows matching `where`, lowest first.
 * The caller's update locks each row and checks `where` again on its latest version.
 */
export async function lowestMatching(
  db: Kysely<Database>,
  statuses: readonly OutboxStatus[],
  where: Where,
  limit: number,
  /** mayHaveBeenDelivered, checked late (candidateIds), `where` leaving it out. */
  delivered?: boolean,
): Promise<string[]> {
  const statement = candidateIds(db, statuses, where, limit, 'asc', undefined, delivered)
  if (!statement) return []
  const { rows } = await statement.execute(db)
  return rows.map((r) => String(r.id))
}

/**
 * How many rows match `where` now: what a bulk action's dry run reports. A filter's
 * mayHaveBeenDelivered, `delivered`, left out of `where`, is checked on the rows matching it,
 * their history read at once (countDelivered).
 */
export async function countMatching(
  db: Kysely<Database>,
  where: Where,
  delivered?: boolean,
): Promise<number> {
  if (delivered !== undefined) {
    const candidates = db
      .selectFrom('mailer.email_outbox')
      .select([...DELIVERY_POSSIBLE_COLUMNS])
      .where(where)
    return countDelivered(db, candidates, delivered)
  }
  const r = await db
    .selectFrom('mailer.email_outbox')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where(where)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

/** The ids past `after` (none: from the first) up to `upTo`, both ids. */
export interface IdSpan {
  after: string | null
  upTo: string
}

/** `span` as conditions on id, to follow others in a WHERE (nothing for none). */
const spanned = (span: IdSpan | null) =>
  span === null
    ? sql``
    : sql`and id <= ${span.upTo}::bigint ${span.after === null ? sql`` : sql`and id > ${span.after}::bigint`}`

/**
 * `db` with a materialized CTE `coded`: the ids (and statuses) of the rows in `statuses` (failed,
 * cancelled) whose last_error_code is `code`, in id order, from email_outbox_failed_cancelled_idx
 * alone (0025 rebuilt it as (status, id) include (last_error_code): an index-only scan of the
 * finished rows' vacuumed pages), a status at a time, merged: read as far as the statement asks, not sorted whole first. As one
 * condition with the rest, the planner reads every failed and cancelled row's heap to check its
 * code (an index scan does not filter on an INCLUDE column). Materialized: Postgres 18 would fold a
 * plain self-join on the primary key back into that scan. Within `span` (a retry loop's), the
 * index is read from its `after` on: the rows behind it, requeued or not, are never read again.
 */
const withFinishedCoded = (
  db: Kysely<Database>,
  code: string,
  statuses: readonly ('failed' | 'cancelled')[],
  span: IdSpan | null,
) =>
  db.with(
    (cte) => cte('coded').materialized(),
    () =>
      sql<{ id: string; status: 'failed' | 'cancelled' }>`(${sql.join(
        statuses.map(
          (status) => sql`select id, status from (select id, status from mailer.email_outbox
                                           where status = ${status} and last_error_code = ${code}
                                             ${spanned(span)}
                                           order by id) as ${sql.id(status)}`,
        ),
        sql` union all `,
      )} order by id)`,
  )

/**
 * countMatching for rows whose last_error_code is `code` among the failed and cancelled ones (`where`
 * still checked whole): their ids first (withFinishedCoded), then each of them in the heap for the
 * rest of `where` (a retry's expires_at is in the heap alone). `delivered` as countMatching's.
 * The ids as one array: one scan of email_outbox_pkey for = any(array), in their order. As
 * `id in (select id from coded)`, Postgres 18 looked each up in email_outbox_failed_cancelled_idx
 * (status, id) instead, `where`'s status making its partial predicate hold: a skip scan over its
 * statuses for each id (about 4 index searches, 9 buffers a row: 23,508 for 2,666 rows, 1,867 now).
 */
export async function countFinishedWithCode(
  db: Kysely<Database>,
  code: string,
  where: Where,
  span: IdSpan | null = null,
  delivered?: boolean,
): Promise<number> {
  const matching = withFinishedCoded(db, code, ['failed', 'cancelled'], span)
    .selectFrom('mailer.email_outbox')
    .where((eb) => eb.and([sql<boolean>`id = any(array(select id from coded))`, where(eb)]))
  if (delivered !== undefined)
    return countDelivered(db, matching.select([...DELIVERY_POSSIBLE_COLUMNS]), delivered)
  const r = await matching
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

/**
 * lowestMatching among the rows in `statuses` whose last_error_code is `code` (`where` still
 * checked whole): their ids in order (withFinishedCoded), each one's row read until `limit` match,
 * so a batch reads the heap of that code's rows at most, never of every failed row before them.
 * Each row is found by its status and id, one descent of email_outbox_failed_cancelled_idx: by
 * `id = coded.id` alone Postgres 18 took that index too (`where`'s status making its partial
 * predicate hold), skip-scanning its statuses for each id (about 4 index searches, 8.8 buffers a
 * row: 8,818 for a batch of 1,000, 3,050 now). Lateral: `where` names the outbox's columns
 * unqualified, and `coded` has an id too.
 */
export async function lowestFinishedWithCode(
  db: Kysely<Database>,
  code: string,
  statuses: readonly ('failed' | 'cancelled')[],
  where: Where,
  limit: number,
  span: IdSpan | null = null,
): Promise<string[]> {
  if (statuses.length === 0) return []
  const rows = await withFinishedCoded(db, code, statuses, span)
    .selectFrom('coded')
    .innerJoinLateral(
      (eb) =>
        eb
          .selectFrom('mailer.email_outbox')
          .select('id')
          .where((w) =>
            w.and([
              w('status', '=', w.ref('coded.status')),
              w('id', '=', w.ref('coded.id')),
              where(w),
            ]),
          )
          .as('matched'),
      (join) => join.onTrue(),
    )
    .select('matched.id')
    .orderBy('coded.id')
    .limit(limit)
    .execute()
  return rows.map((r) => String(r.id))
}
