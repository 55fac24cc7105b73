// Every page of an outbox listing, following its cursor to the end: the ids a client walking the API's pages would see.
import type { Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { listOutbox } from '../../src/outbox/inspect.ts'
import type { OutboxFilter } from '../../src/outbox/outbox-filter.ts'

/** The ids of every page of `listOutbox(db, f, …, scope)`, `limit` rows at a time, newest first. */
export async function allPages(
  db: Kysely<Database>,
  f: OutboxFilter,
  limit: number,
  scope: string | null,
): Promise<string[]> {
  const ids: string[] = []
  let after: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const page = await listOutbox(db, f, { limit, after }, scope)
    ids.push(...page.items.map((i) => i.id))
    if (page.next === null) return ids
    after = page.next
  }
  throw new Error('the cursor never ended')
}
