// A list page's pending rows: looked for past its cursor first, sorted when few are pending, else left to a walk of spans.
import { type Expression, type Kysely, type RawBuilder, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Where } from './candidate-ids.ts'

/** The ids past a list's cursor the pending rows are looked for first: 20 pages' worth of a page. */
const nearIds = (limit: number) => 20 * limit

/**
 * No index holds pending rows in id order (email_outbox_claim_idx is in claim order), so a page's
 * first `limit` pending rows past its cursor are found one of three ways, each bounded:
 * - near: among the nearIds ids past the cursor, through email_outbox_pkey (a backlog is dense in
 *   id order: 51 of them within ~60 ids; ~70 buffers when it finds none);
 * - sorted, when they do not fill it and at most `fewRows` rows are pending (an outbox that keeps
 *   its finished rows): every pending id through email_outbox_claim_idx, sorted, `where` checked on
 *   each row;
 * - else unresolved: neither is bounded (the rows past the cursor may be another status for a
 *   million ids, and a million pending rows to sort: 0.2-0.9 s at a million, bench/list-scale.ts),
 *   so the page walks a span of the primary key instead (spanPageStatement).
 * pending_few counts claim_idx's entries up to fewRows + 1 (an index-only scan), only when the
 * near look did not fill: uncorrelated subqueries are evaluated when first used.
 */
export interface PendingLook {
  /** The CTEs pending_start, pending_near and pending_few: first in the WITH of the statement. */
  ctes: RawBuilder<unknown>
  /** candidateIds's pending branch: the near rows when they fill it, else `sorted` when few rows are pending. */
  branch(sorted: Expression<unknown>): RawBuilder<{ id: string }>
  /** The near rows do not fill the page and more than fewRows rows are pending: walk a span. */
  unresolved: RawBuilder<boolean>
}

export function pendingLook(
  db: Kysely<Database>,
  where: Where,
  limit: number,
  order: 'asc' | 'desc',
  after: string | undefined,
  fewRows: number,
): PendingLook {
  const span = sql.lit(nearIds(limit))
  const range =
    order === 'asc'
      ? sql<boolean>`id > f.start and id <= least(f.start, 9223372036854775807 - ${span}) + ${span}`
      : sql<boolean>`id < f.start and id >= f.start - ${span}`
  const from =
    order === 'asc'
      ? sql`coalesce(${after ?? null}::bigint, (select min(id) - 1 from mailer.email_outbox))`
      : sql`coalesce(${after ?? null}::bigint, (select max(id) + 1 from mailer.email_outbox))`
  const near = db
    .selectFrom('mailer.email_outbox')
    .select('id')
    .where((eb) => eb.and([eb('status', '=', 'pending'), where(eb)]))
    .where(range)
    .orderBy('id', order)
    .limit(limit)
  const few = sql.lit(fewRows)
  const filled = sql<boolean>`(select count(*) from pending_near) = ${limit}`
  return {
    ctes: sql`pending_start as (select ${from} as start),
      pending_near as (select id from pending_start f, lateral ${near} n),
      pending_few as (select count(*) <= ${few} as yes
                        from (select 1 from mailer.email_outbox where status = 'pending'
                               limit ${sql.lit(fewRows + 1)}) c)`,
    branch: (sorted) =>
      sql<{ id: string }>`select id from (
          select id from pending_near where ${filled}
          union all
          select id from ${sorted} s where not ${filled} and (select yes from pending_few)
        ) as pending`,
    unresolved: sql<boolean>`(not ${filled} and not (select yes from pending_few))`,
  }
}
