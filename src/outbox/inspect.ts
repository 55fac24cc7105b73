// Read-only inspection: a filtered, keyset-paginated list of rows (no bodies); one row is outbox-row.ts.
import { type ExpressionBuilder, type Kysely, type RawBuilder, sql } from 'kysely'
import { type Clock, systemClock } from '../clock.ts'
import { type Database, OUTBOX_STATUSES } from '../db/schema.ts'
import { candidateIds } from './candidate-ids.ts'
import { failedRun, walksFailedRun } from './failed-walk.ts'
import { summarySelection } from './lease-owner-name.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'
import { type OutboxSummary, toOutboxSummary } from './outbox-view.ts'
import { pendingLook } from './pending-near.ts'
import { settledHorizon } from './settled-horizon.ts'
import { SPAN_ROWS, spanPage, spanPageStatement } from './span-page.ts'

/** newest: by id descending (the default); oldest: by id ascending. */
export type ListOrder = 'newest' | 'oldest'

interface ListPage {
  limit: number
  order?: ListOrder
  /** Keyset position: only rows past this id in the order (a smaller id newest first, larger oldest first). */
  after?: string
  /** Oldest first: no row above this id (settledHorizon), so a page never passes one committed late. */
  through?: string
  /** Walking the primary key: the ids one page reads at most (SPAN_ROWS; tests set fewer). */
  spanRows?: number
}

interface ListResult {
  items: OutboxSummary[]
  /**
   * Where the next page starts when more rows may follow: this page's last id, or the block
   * boundary past the span it read when the page did not fill (a filter walking the primary key,
   * spanPage); the API wraps it in an opaque cursor.
   */
  next: string | null
}

/**
 * Uses the primary key for order and position; filters narrow it. One extra row tells "more".
 * A correlation id or a template is looked up instead (candidateIds: finished rows through
 * email_outbox_correlation_idx or email_outbox_template_idx, the others through their statuses'
 * indexes): few rows may match one, so walking the primary key for a page of them would read
 * every kept row. So are several statuses, each through its own index: the primary key filtered
 * by `status in (…)` read 100,000 rows (0.7-1.3 s) for a page of pending and cancelled rows past
 * the middle of 200,000 kept ones (bench/list-order.ts). Oldest first, a page first waits for the
 * outbox's writers open at its start and stops at the highest id committed before them
 * (settledHorizon, on `clock`): a row committed after rows with higher ids is listed in its
 * place. A filter walking the primary key reads one span of it (walksPrimaryKey): a tenant of 50
 * rows among a million read them all (0.55-6 s, round 38), a page now reads 20,000 at most; so
 * does a page whose pending rows neither the look past its cursor nor a sort of the few pending
 * rows finds (pending-near.ts): under a million pending rows, pending in a day's window read
 * 465,281-501,640 rows (0.3-0.9 s), pending and failed oldest first from 1,050 sent rows sorted
 * every pending id (0.24-0.6 s; round 40, bench/list-scale.ts). Failed and cancelled rows narrowed
 * by a window or lastErrorCode are looked for among a bounded run of them past the cursor
 * (failed-walk.ts): a day's window far from it read 10,082 of 20,000 failed rows (49 ms, round 42).
 */
export async function listOutbox(
  db: Kysely<Database>,
  filter: OutboxFilter,
  page: ListPage,
  scopeTenant: string | null,
  clock: Pick<Clock, 'now' | 'monotonic' | 'sleep'> = systemClock,
): Promise<ListResult> {
  if (page.order === 'oldest') {
    const through = await settledHorizon(db, clock)
    if (through === null) return { items: [], next: null }
    page = { ...page, through }
  }
  const walkSpan = async () => {
    const walk = {
      order: page.order === 'oldest' ? ('asc' as const) : ('desc' as const),
      limit: page.limit,
      after: page.after,
      through: page.through,
      spanRows: page.spanRows ?? SPAN_ROWS,
    }
    const { rows } = await spanPageStatement(db, filter, scopeTenant, walk).execute(db)
    return spanPage(rows, walk)
  }
  if (walksPrimaryKey(filter)) return walkSpan()
  const query = listStatement(db, filter, page, scopeTenant)
  if (!query) return { items: [], next: null }
  const { rows } = await query.execute(db)
  if (rows[0]?.pending_unresolved) return walkSpan()
  const matched = rows.filter((r) => r.id !== null)
  const more = matched.length > page.limit
  const items = matched.slice(0, page.limit).map(toOutboxSummary)
  const walkedTo = rows[0]?.walked_to ?? null
  return { items, next: more ? (items.at(-1)?.id ?? null) : walkedTo && String(walkedTo) }
}

/**
 * Whether a page walks the primary key and filters it (spanPageStatement, not listStatement): no
 * filter, or one no index serves (tenant, a time window, lastErrorCode, status=sent, alone or
 * with others, which has no index). Such a page reads one span of SPAN_ROWS rows at most, so it may come back short, even
 * empty, with a cursor. A pending, sending, failed or cancelled status, several statuses, a correlation id, a template,
 * a dedupe key or ids read their rows through an index and fill their page (pending ones unless
 * pending-near.ts leaves them to a span).
 */
export function walksPrimaryKey(filter: OutboxFilter): boolean {
  if (filter.correlationId !== undefined || filter.template !== undefined) return false
  if (filter.dedupeKey !== undefined || filter.ids !== undefined) return false
  // Sent among other statuses too: candidateIds's sent branch walked the primary key filtered by
  // status until it had a page, every pending row above the sent ones under a backlog.
  const statuses = filter.status
  return statuses === undefined || statuses.includes('sent')
}

/**
 * Whether a page's pending rows are looked for past its cursor (pendingLook): always, but for a
 * correlation id, a template, a dedupe key or ids, which find their rows through their own indexes.
 * Pending alone too: the planner, taking the pending rows as spread evenly over the ids, walked the
 * primary key to them, every finished row before a backlog at the table's end (2,000,000 rows of a
 * year with 20,000 pending: oldest first 5 s, cut by the API's timeout, 503; newest first from a
 * cursor among the finished rows 1.2 s for an empty page; round 52, bigtable52).
 */
export function looksForPending(filter: OutboxFilter): boolean {
  if (!filter.status?.includes('pending')) return false
  if (filter.correlationId !== undefined || filter.template !== undefined) return false
  return filter.dedupeKey === undefined && filter.ids === undefined
}

/**
 * A page's row (all null when the page is empty) beside whether its pending rows are left to a span
 * and where its run of failed and cancelled rows ended (failed-walk.ts; null: no run, or no end).
 */
export type ListRow = Parameters<typeof toOutboxSummary>[0] & {
  pending_unresolved: boolean
  walked_to: string | null
}

/**
 * listOutbox's statement for a filter an index serves (walksPrimaryKey false; bench/template-filter.ts
 * explains it); null when nothing can match. Its rows say pending_unresolved when the page must
 * walk a span instead (pendingLook): then its rows are not the page.
 */
export function listStatement(
  db: Kysely<Database>,
  filter: OutboxFilter,
  page: ListPage,
  scopeTenant: string | null,
): RawBuilder<ListRow> | null {
  const after = page.after
  const direction = page.order === 'oldest' ? 'asc' : 'desc'
  const range = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([
      ...(after === undefined ? [] : [eb('id', direction === 'asc' ? '>' : '<', after)]),
      ...(page.through === undefined ? [] : [eb('id', '<=', page.through)]),
    ])
  const where = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([matchOutbox(eb, filter, scopeTenant, 'rowByRow'), range(eb)])
  let query = db.selectFrom('mailer.email_outbox').select(summarySelection('mailer.email_outbox'))
  const several = (filter.status?.length ?? 0) > 1
  const look = looksForPending(filter)
    ? pendingLook(db, where, page.limit + 1, direction, after, page.spanRows ?? SPAN_ROWS)
    : undefined
  const run = walksFailedRun(filter)
    ? failedRun(db, filter, scopeTenant, range, page.limit + 1, direction)
    : undefined
  // The pending look is left unbounded by the run: it decides alone whether the page walks a span.
  const bounded = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    run ? eb.and([where(eb), run.within(eb)]) : where(eb)
  if (filter.correlationId === undefined && filter.template === undefined && !several && !look) {
    query = query.where(bounded)
  } else {
    const statuses = filter.status ?? OUTBOX_STATUSES
    const ids = candidateIds(db, statuses, bounded, page.limit + 1, direction, look?.branch)
    if (!ids) return null
    // As an array, the ids are fetched through email_outbox_pkey whatever the planner guesses of
    // the near look's count: as `id in (…)` it hashed them against a sequential scan of the table.
    query = query.where(look ? sql<boolean>`id = any(array(${ids}))` : sql<boolean>`id in (${ids})`)
    if (run) query = query.where(run.within)
  }
  const paged = query.orderBy('id', direction).limit(page.limit + 1)
  const ctes = [...(look ? [look.ctes] : []), ...(run ? [run.cte] : [])]
  // One row even for an empty page, to carry pending_unresolved and walked_to.
  return sql<ListRow>`${ctes.length > 0 ? sql`with ${sql.join(ctes)} ` : sql``}
    select page.*, gate.pending_unresolved, gate.walked_to
      from (select ${look?.unresolved ?? sql<boolean>`false`} as pending_unresolved,
                   ${run?.walkedTo ?? sql`null::bigint`} as walked_to) gate
      left join lateral ${paged} page on true
     order by page.id ${sql.raw(direction)}`
}
