// loadTemplates: fetches the templates a claimed batch needs, in one statement.
import type { Kysely } from 'kysely'
import type { Database, TemplateRow } from '../db/schema.ts'

/** Uses the templates primary key. */
export async function loadTemplates(
  db: Kysely<Database>,
  names: readonly string[],
): Promise<Map<string, TemplateRow>> {
  if (names.length === 0) return new Map()
  const rows = await db
    .selectFrom('mailer.templates')
    .selectAll()
    .where('name', 'in', [...new Set(names)])
    .execute()
  return new Map(rows.map((r) => [r.name, r]))
}
