// Every page of an outbox listing, following its cursor to the end, and the ids a plain scan finds: what a client walking the API's pages would see, and what it should.
import type { Kysely } from 'kysely'
import type pg from 'pg'
import type { Database } from '../../src/db/schema.ts'
import { type ListOrder, listOutbox } from '../../src/outbox/inspect.ts'
import type { OutboxFilter } from '../../src/outbox/outbox-filter.ts'

/**
 * The ids of every page of `listOutbox(db, f, …, scope)`, `limit` rows at a time, newest first
 * unless `o.order` says; `o.spanRows` as listOutbox's page takes it.
 */
export async function allPages(
  db: Kysely<Database>,
  f: OutboxFilter,
  limit: number,
  scope: string | null,
  o: { order?: ListOrder; spanRows?: number } = {},
): Promise<string[]> {
  const ids: string[] = []
  let after: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const page = await listOutbox(db, f, { limit, after, ...o }, scope)
    ids.push(...page.items.map((i) => i.id))
    if (page.next === null) return ids
    after = page.next
  }
  throw new Error('the cursor never ended')
}

/** The ids of the rows matching the SQL condition `where`, by a plain ORDER BY id in the order's direction. */
export async function scanIds(pool: pg.Pool, where: string, order: ListOrder): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `select id from mailer.email_outbox where ${where} order by id ${order === 'oldest' ? 'asc' : 'desc'}`,
  )
  return rows.map((r) => String(r.id))
}
