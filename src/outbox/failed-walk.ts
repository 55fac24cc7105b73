// A list page's failed and cancelled rows narrowed by what their index does not order: read among a bounded run of them past its cursor, the page ending there.
import { type ExpressionBuilder, type Kysely, type RawBuilder, sql } from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'
import type { Where } from './candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'

/** The failed (or cancelled) rows past a page's cursor it looks at most: 20 pages' worth of a page. */
const walkedRows = (limit: number) => 20 * limit

/** The statuses whose rows a page reads through email_outbox_failed_cancelled_idx (status, id). */
const WALKED: readonly OutboxStatus[] = ['failed', 'cancelled']

/**
 * Whether a page's failed and cancelled rows are read among a bounded run past its cursor: a time
 * window, lastErrorCode or mayHaveBeenDelivered (each row read a probe of its history) narrows
 * them, which neither email_outbox_failed_cancelled_idx (status,
 * id) nor a tenant's email_outbox_tenant_failed_cancelled_idx (tenant, status, id, 0085) orders, so
 * a page walked their index until its page filled: every failed row newer than a window far from
 * the cursor (13,107 rows, 65-76 ms at a million, bench/list-scale.ts). A correlation id, a
 * template, a dedupe key or ids find their rows through their own indexes.
 */
export function walksFailedRun(filter: OutboxFilter): boolean {
  if (!filter.status?.some((s) => WALKED.includes(s))) return false
  if (filter.correlationId !== undefined || filter.template !== undefined) return false
  if (filter.dedupeKey !== undefined || filter.ids !== undefined) return false
  const { createdFrom, createdTo, sentFrom, sentTo, lastErrorCode, mayHaveBeenDelivered } = filter
  return [createdFrom, createdTo, sentFrom, sentTo, lastErrorCode, mayHaveBeenDelivered].some(
    (v) => v !== undefined,
  )
}

export interface FailedRun {
  /** The CTE failed_run (walked_to: where the run ends, or null when it reaches the last row): first in the WITH. */
  cte: RawBuilder<unknown>
  /** The page's rows end at the run's end: every failed or cancelled row up to it was looked at. */
  within: Where
  /** walked_to, for the page's gate row: a page that does not fill continues past it. */
  walkedTo: RawBuilder<string | null>
}

/**
 * The run ends at the walkedRows-th row of each walked status past the cursor (its index read for
 * ids alone, an index-only scan; with a tenant, the tenant's entries, so the end is one of the
 * tenant's own ids and its pages and cursors do not depend on other tenants' rows), the nearest
 * of them; no end when a status has fewer. A page's rows stop at the end: the walked statuses'
 * rows up to it are at most walkedRows each, all looked at; any other status's branch gives its
 * first rows past the cursor, so the page has every match up to the end. A page that does not
 * fill continues past the end (listOutbox), which is past the cursor: a walk always advances.
 */
export function failedRun(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  range: Where,
  limit: number,
  order: 'asc' | 'desc',
): FailedRun {
  const ends = WALKED.filter((s) => filter.status?.includes(s)).map(
    (status) =>
      sql<string | null>`(${db
        .selectFrom('mailer.email_outbox')
        .select('id')
        .where((eb) =>
          eb.and([
            eb('status', '=', status),
            matchOutbox(eb, { tenant: filter.tenant }, scopeTenant),
            range(eb),
          ]),
        )
        .orderBy('id', order)
        .offset(sql.lit(walkedRows(limit) - 1))
        .limit(sql.lit(1))})`,
  )
  const nearest = order === 'desc' ? sql`greatest` : sql`least`
  const walkedTo = sql<string | null>`(select walked_to from failed_run)`
  // Numeric bounds where no end is found: an index condition, where `walked_to is null or` is not.
  const within = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    order === 'desc'
      ? eb('id', '>=', sql<string>`coalesce(${walkedTo}, -9223372036854775808)`)
      : eb('id', '<=', sql<string>`coalesce(${walkedTo}, 9223372036854775807)`)
  return {
    cte: sql`failed_run as (select ${nearest}(${sql.join(ends)})::bigint as walked_to)`,
    within,
    walkedTo,
  }
}
