// The database's encoding: a new install is refused one that is not UTF8, an existing one is warned of; one that cannot hold the migrations gets nothing.
import type pg from 'pg'
import { AppError } from '../errors.ts'
import type { Migration } from './migrations.ts'

// Postgres's "character with byte sequence … has no equivalent in encoding …".
const UNTRANSLATABLE = '22P05'

const CREATE_UTF8 = `create one with ENCODING 'UTF8' (createdb -E UTF8 -T template0 …, or CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0)`

/**
 * Why a database whose encoding is not UTF8 breaks mail, for `encoding` (server_encoding's name).
 * SQL_ASCII stores the bytes unchecked, so the schema's character rules (0175's blank text,
 * normalize_recipients's letters, lengths) see UTF-8 bytes, not characters, and disagree with the
 * API's: `{"text":"\u00a0"}` is taken (201) and fails at send, invalid_message. Any other encoding
 * holds only some characters: mail with any other is refused as it is stored.
 */
export function notUtf8Consequence(encoding: string): string {
  return encoding === 'SQL_ASCII'
    ? 'SQL_ASCII stores bytes unchecked, so the schema counts and classes bytes, not characters, and disagrees with the API: some mail is taken and then fails at send'
    : `${encoding} holds only some characters, so mail with any other (an emoji, most scripts) is refused as it is stored`
}

/** One line for check-config, serve's log and /readyz: an existing database whose encoding is not UTF8, kept working. */
export function notUtf8Warning(encoding: string): string {
  return `the database's encoding is ${encoding}, not UTF8, which outbox-mailer requires: ${notUtf8Consequence(encoding)}; move the data to a UTF8 database (${CREATE_UTF8}) (deploy guide, "Database encoding")`
}

/**
 * Before anything changes: a database whose encoding is not UTF8 is refused a new install (no
 * migration recorded yet), with why and how to create a UTF8 one. One some release already migrated
 * is migrated on (refusing it would stop a running deployment's every deploy at its release
 * command); its encoding is returned for the caller to warn of, null for UTF8. Its migrations'
 * text is still asked first (each as a parameter, converted as the migration itself would be): in
 * LATIN1, 0001-0009 were applied and 0010 failed for good, a half-made schema no release could
 * finish. SQL_ASCII converts nothing.
 */
export async function assertEncodingTakesMigrations(
  client: pg.Client,
  list: readonly Migration[],
): Promise<string | null> {
  const { rows } = await client.query<{ encoding: string; recorded: boolean }>(
    `select current_setting('server_encoding') as encoding,
            to_regclass('mailer.schema_migrations') is not null as recorded`,
  )
  const encoding = rows[0]?.encoding ?? 'UTF8'
  if (encoding === 'UTF8') return null
  const installed =
    rows[0]?.recorded === true &&
    (await client.query('select 1 from mailer.schema_migrations limit 1')).rows.length > 0
  if (!installed) {
    throw new AppError(
      'config_invalid',
      `the database's encoding is ${encoding}: outbox-mailer needs a UTF8 database (mail holds any Unicode text; ${notUtf8Consequence(encoding)}): ${CREATE_UTF8} and move the application's data to it. Nothing was changed`,
    )
  }
  if (encoding === 'SQL_ASCII') return encoding
  for (const m of list) {
    try {
      await client.query('select $1::text is null', [m.sql])
    } catch (e) {
      if ((e as { code?: string }).code !== UNTRANSLATABLE) throw e
      throw new AppError(
        'config_invalid',
        `the database's encoding is ${encoding}: outbox-mailer needs a UTF8 database (mail holds any Unicode text, and migration ${m.name} holds characters ${encoding} has not: ${(e as Error).message}); ${CREATE_UTF8} and move the application's data to it. Nothing was changed`,
        {},
        { cause: e },
      )
    }
  }
  return encoding
}
