// A list page that walks the primary key reads one span of it, SPAN_ROWS rows past its cursor at most, and says where the span ended.
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { summarySelection } from './lease-owner-name.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'
import { type OutboxSummary, toOutboxSummary } from './outbox-view.ts'

/**
 * The rows one such page reads at most: 9-52 ms on a million rows on a loaded 2-core machine
 * (bench/list-scale.ts). A filter that matches few of them (a small tenant, a time window far from
 * the walk's start, status=sent above a pending backlog) answers a short page, even an empty one,
 * with a cursor past the span, instead of reading the table until its page fills.
 */
export const SPAN_ROWS = 20_000

export interface SpanWalk {
  order: 'asc' | 'desc'
  limit: number
  after?: string
  through?: string
  spanRows: number
}

/**
 * The span: the first spanRows + 1 rows past `after` (up to `through`) in id order, numbered, read
 * through email_outbox_pkey; the page: its rows that match, in order, and the span's last row and
 * the one past it, which say where the span ended and whether rows follow. One statement, so the
 * page and its span's end come from one snapshot (a row committed between two statements could
 * move the end past rows the page never read). The plan streams (Limit over a filter over the
 * numbered index scan): a page that fills early reads no further; one that does not, the span.
 */
export function spanPageStatement(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  w: SpanWalk,
) {
  const { order, after, through, spanRows } = w
  const span = db
    .selectFrom('mailer.email_outbox')
    .selectAll()
    .select(sql<string>`row_number() over (order by id ${sql.raw(order)})`.as('span_row'))
    .$if(after !== undefined, (q) => q.where('id', order === 'asc' ? '>' : '<', after!))
    .$if(through !== undefined, (q) => q.where('id', '<=', through!))
    .orderBy('id', order)
    .limit(spanRows + 1)
    .as('span')
  // matchOutbox names bare columns, which the span has as the table does.
  const matching = (eb: unknown) =>
    matchOutbox(eb as ExpressionBuilder<Database, 'mailer.email_outbox'>, filter, scopeTenant)
  return (
    db
      .selectFrom(span)
      .select(summarySelection('span'))
      .select((eb) => [sql<boolean>`${matching(eb)}`.as('matched'), 'span_row'])
      .where((eb) =>
        eb.or([
          eb.and([matching(eb), eb('span_row', '<=', String(spanRows))]),
          eb('span_row', '>=', String(spanRows)),
        ]),
      )
      .orderBy('id', order)
      // Up to limit + 1 matching rows and the two marking the span's end: fewer means none was cut.
      .limit(w.limit + 3)
  )
}

/**
 * The page spanPageStatement's rows make: its first `limit` matching rows, and where the next page
 * starts: past its last row when more matched, else past the span's end when rows follow it, else
 * nowhere (the walk has ended).
 */
export function spanPage(
  rows: Awaited<ReturnType<ReturnType<typeof spanPageStatement>['execute']>>,
  w: SpanWalk,
): { items: OutboxSummary[]; next: string | null } {
  const inSpan = (r: (typeof rows)[number]) => Number(r.span_row) <= w.spanRows
  const matched = rows.filter((r) => r.matched && inSpan(r))
  const items = matched.slice(0, w.limit).map(toOutboxSummary)
  if (matched.length > w.limit) return { items, next: items.at(-1)?.id ?? null }
  const end = rows.find((r) => Number(r.span_row) === w.spanRows)
  const beyond = rows.some((r) => !inSpan(r))
  return { items, next: beyond && end ? String(end.id) : null }
}
