// Read-only inspection: a filtered, keyset-paginated list (no bodies) and one row with its attempts.
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import { type Clock, systemClock } from '../clock.ts'
import { type Database, OUTBOX_STATUSES } from '../db/schema.ts'
import { candidateIds } from './candidate-ids.ts'
import { parseJsonExactly } from './exact-json.ts'
import { leaseOwnerName, summarySelection } from './lease-owner-name.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'
import {
  type Attempt,
  type OutboxRecord,
  type OutboxSummary,
  toAttempt,
  toOutboxRecord,
  toOutboxSummary,
} from './outbox-view.ts'
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
 * rows among a million read them all (0.55-6 s, round 38), a page now reads 20,000 at most.
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
  if (walksPrimaryKey(filter)) {
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
  const query = listStatement(db, filter, page, scopeTenant)
  if (!query) return { items: [], next: null }
  const rows = await query.execute()
  const more = rows.length > page.limit
  const items = rows.slice(0, page.limit).map(toOutboxSummary)
  return { items, next: more ? (items.at(-1)?.id ?? null) : null }
}

/**
 * Whether a page walks the primary key and filters it (spanPageStatement, not listStatement): no
 * filter, or one no index serves (tenant, a time window, lastErrorCode, status=sent, which has no
 * index). Such a page reads one span of SPAN_ROWS rows at most, so it may come back short, even
 * empty, with a cursor. A pending, sending, failed or cancelled status, several statuses, a correlation id, a template,
 * a dedupe key or ids read their rows through an index and fill their page.
 */
export function walksPrimaryKey(filter: OutboxFilter): boolean {
  if (filter.correlationId !== undefined || filter.template !== undefined) return false
  if (filter.dedupeKey !== undefined || filter.ids !== undefined) return false
  const statuses = filter.status
  return statuses === undefined || (statuses.length === 1 && statuses[0] === 'sent')
}

/**
 * listOutbox's statement for a filter an index serves (walksPrimaryKey false; bench/template-filter.ts
 * explains it); null when nothing can match.
 */
export function listStatement(
  db: Kysely<Database>,
  filter: OutboxFilter,
  page: ListPage,
  scopeTenant: string | null,
) {
  const after = page.after
  const direction = page.order === 'oldest' ? 'asc' : 'desc'
  const where = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([
      matchOutbox(eb, filter, scopeTenant),
      ...(after === undefined ? [] : [eb('id', direction === 'asc' ? '>' : '<', after)]),
      ...(page.through === undefined ? [] : [eb('id', '<=', page.through)]),
    ])
  let query = db.selectFrom('mailer.email_outbox').select(summarySelection('mailer.email_outbox'))
  const several = (filter.status?.length ?? 0) > 1
  if (filter.correlationId === undefined && filter.template === undefined && !several) {
    query = query.where(where)
  } else {
    // Several statuses alone: the pending branch looks past the cursor first (a backlog's rows).
    const near = several && filter.correlationId === undefined && filter.template === undefined
    const statuses = filter.status ?? OUTBOX_STATUSES
    const ids = candidateIds(
      db,
      statuses,
      where,
      page.limit + 1,
      direction,
      near ? { after } : undefined,
    )
    if (!ids) return null
    // As an array, the ids are fetched through email_outbox_pkey whatever the planner guesses of
    // the near look's count: as `id in (…)` it hashed them against a sequential scan of the table.
    query = query.where(near ? sql<boolean>`id = any(array(${ids}))` : sql<boolean>`id in (${ids})`)
  }
  return query.orderBy('id', direction).limit(page.limit + 1)
}

/** One row with bodies; another tenant's row is simply not found. */
export async function findOutboxRow(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<OutboxRecord | null> {
  const row = await db
    .selectFrom('mailer.email_outbox')
    .selectAll()
    // The source row as its text too: the driver's JSON.parse would change its numbers (12.50 to
    // 12.5, a bigint past 2^53), which the API answers as Postgres wrote them (exact-json.ts).
    .select(sql<string | null>`source_row::text`.as('source_row_text'))
    .select(leaseOwnerName('mailer.email_outbox.lease_owner').as('lease_owner_name'))
    .where('id', '=', id)
    .$if(scopeTenant !== null, (q) => q.where('tenant', '=', scopeTenant!))
    .executeTakeFirst()
  if (!row) return null
  const { source_row_text: text, lease_owner_name: owner, ...columns } = row
  return toOutboxRecord({
    ...columns,
    lease_owner: owner,
    source_row: text === null ? null : parseJsonExactly(text),
  })
}

/** The attempt history of one row, oldest first (served by email_attempts_pkey (outbox_id, id)). */
export async function listAttempts(db: Kysely<Database>, outboxId: string): Promise<Attempt[]> {
  const rows = await db
    .selectFrom('mailer.email_attempts')
    .selectAll()
    .where('outbox_id', '=', outboxId)
    .orderBy('id', 'asc')
    .execute()
  return rows.map(toAttempt)
}
