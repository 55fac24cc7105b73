// A list page that walks the primary key reads one span of ids past its cursor, SPAN_ROWS at most, and says where the next span starts.
import { type ExpressionBuilder, type Kysely, type RawBuilder, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { summarySelection } from './lease-owner-name.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'
import { type OutboxSummary, toOutboxSummary } from './outbox-view.ts'

/**
 * The ids one such page reads at most, so the rows (bench/list-scale.ts). A filter that matches
 * few of them (a small tenant, a time window far from the walk's start, status=sent above a
 * pending backlog) answers a short page, even an empty one, with a cursor past the span, instead
 * of reading the table until its page fills.
 */
export const SPAN_ROWS = 20_000

/** bigint's largest: the last id a walk oldest first can pass. */
const LAST_ID = '9223372036854775807'

export interface SpanWalk {
  order: 'asc' | 'desc'
  limit: number
  after?: string
  through?: string
  /** Even: the span is the rest of the block of spanRows / 2 ids holding its start, and the next block. */
  spanRows: number
}

/**
 * The span is a range of ids, not a count of rows: from the cursor (or the table's first id in the
 * order) to the far end of the next block of spanRows / 2 ids, blocks aligned on multiples of it
 * (spanRows / 2 + 1 to spanRows ids). Its end and the next span's start are block boundaries, so a
 * tenant's key is answered the same pages and cursors whichever rows of other tenants exist: a
 * span ending at the spanRows-th row read named another tenant's row id, and told by the cursor a
 * client wrote for any position whether the id next to it existed. What is left: the next span
 * skips blocks holding no row at all (a purged range would be walked empty page by empty page),
 * so a cursor tells whether any row is in a block, as the ids of one's own rows tell how many
 * were enqueued. One statement: the page and the next block holding a row come from one snapshot.
 * Only the page's matching rows are selected (summary columns); the span's others are read for
 * the filter's columns and dropped (bodies are never selected).
 */
export function spanPageStatement(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  w: SpanWalk,
) {
  const block = sql.lit(Math.max(1, Math.floor(w.spanRows / 2)))
  const through = w.through === undefined ? null : w.through
  const after = w.after === undefined ? null : w.after
  // (above, upto]: the rest of the start's block and the next one; newest first the start is the
  // top. Numeric where a cursor next to bigint's largest would overflow past it.
  const bounds: RawBuilder<unknown> =
    w.order === 'desc'
      ? sql`select (s / ${block} - 1) * ${block} - 1 as above, s as upto
              from (select coalesce(${after}::bigint - 1, (select max(id) from mailer.email_outbox)) as s) t`
      : sql`select a as above,
                   least((div(a::numeric + 1, ${block}) + 2) * ${block} - 1, ${through}::bigint, ${LAST_ID}::bigint)::bigint as upto
              from (select coalesce(${after}::bigint, (select min(id) - 1 from mailer.email_outbox)) as a) t`
  // The nearest row past the span (email_outbox_pkey, one probe): where the next span starts.
  const nextRow =
    w.order === 'desc'
      ? sql<string | null>`(select max(id) from mailer.email_outbox where id <= b.above)`
      : sql<string | null>`(select min(id) from mailer.email_outbox
                              where id > b.upto and (${through}::bigint is null or id <= ${through}::bigint))`
  const matching = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    matchOutbox(eb, filter, scopeTenant, 'rowByRow')
  const page = db
    .selectFrom('mailer.email_outbox')
    .select(summarySelection('mailer.email_outbox'))
    .where(sql<boolean>`id > edge.above and id <= edge.upto`)
    .where(matching)
    .orderBy('id', w.order)
    .limit(w.limit + 1)
  return sql<SpanRow>`
    select page.*, edge.next_row
      from (select b.above, b.upto, ${nextRow} as next_row from (${bounds}) b) edge
      left join lateral ${page} page on true
     order by page.id ${sql.raw(w.order)}`
}

/** A page's row (all null when the span matched nothing) beside where the next span may start. */
type SpanRow = Parameters<typeof toOutboxSummary>[0] & { next_row: string | null }

/**
 * The page spanPageStatement's rows make: its first `limit` rows, and where the next page starts:
 * past its last row when more matched, else at the block boundary before the next row past the
 * span, else nowhere (the walk has ended).
 */
export function spanPage(
  rows: SpanRow[],
  w: SpanWalk,
): { items: OutboxSummary[]; next: string | null } {
  const matched = rows.filter((r) => r.id !== null)
  const items = matched.slice(0, w.limit).map(toOutboxSummary)
  if (matched.length > w.limit) return { items, next: items.at(-1)?.id ?? null }
  const nextRow = rows[0]?.next_row ?? null
  if (nextRow === null) return { items, next: null }
  const block = BigInt(Math.max(1, Math.floor(w.spanRows / 2)))
  const start = (BigInt(nextRow) / block) * block
  return { items, next: String(w.order === 'desc' ? start + block : start - 1n) }
}
