// Whether the database's encoding can hold the migrations' text: one that cannot is refused before anything is applied.
import type pg from 'pg'
import { AppError } from '../errors.ts'
import type { Migration } from './migrations.ts'

// Postgres's "character with byte sequence … has no equivalent in encoding …".
const UNTRANSLATABLE = '22P05'

/**
 * Refuses, before anything changes, a database whose encoding cannot hold a migration's text
 * (LATIN1: the migrations hold "…" and "–"); one already applied was held, so all are asked. Each text is sent as a parameter, which the
 * server converts to its encoding as it would the migration itself: 0001-0009 were applied, then
 * 0010 failed for good, a half-made schema no release could finish. UTF8 and SQL_ASCII (which
 * converts nothing) hold any text; an encoding that holds every character (WIN1252) is taken, as
 * a database a release already migrated in it keeps working.
 */
export async function assertMigrationsFit(client: pg.Client, list: readonly Migration[]) {
  const { rows } = await client.query<{ encoding: string }>(
    `select current_setting('server_encoding') as encoding`,
  )
  const encoding = rows[0]?.encoding ?? 'UTF8'
  if (encoding === 'UTF8' || encoding === 'SQL_ASCII') return
  for (const m of list) {
    try {
      await client.query('select $1::text is null', [m.sql])
    } catch (e) {
      if ((e as { code?: string }).code !== UNTRANSLATABLE) throw e
      throw new AppError(
        'config_invalid',
        `the database's encoding is ${encoding}: outbox-mailer needs a UTF8 database (mail holds any Unicode text, and migration ${m.name} holds characters ${encoding} has not: ${(e as Error).message}); create one with ENCODING 'UTF8' (createdb -E UTF8 -T template0 …) and move the application's data to it. Nothing was changed`,
        {},
        { cause: e },
      )
    }
  }
}
