// A provider's text as the database can store it: no NUL, and in a database an older release left in another encoding than UTF8 (WIN1252, LATIN1), no character that encoding lacks.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { storable } from './settle-item.ts'

/** A text as one database can store it. */
export type Fit = (text: string) => string

// Postgres's "character with byte sequence … in encoding "UTF8" has no equivalent in encoding …".
const UNTRANSLATABLE = '22P05'

// Each database (its statements' Kysely) whose encoding lacks characters, once a statement met one:
// a UTF8 database, nearly every one, never asks and pays one map lookup a statement.
const fits = new WeakMap<object, Fit>()

// WIN1252's 0x80-0x9F: the characters it holds there, beside ASCII and U+00A0-U+00FF (Postgres's
// map leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D, and so U+0080-U+009F, without one).
const WIN1252_HIGH = new Set([
  0x20ac, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152,
  0x017d, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a,
  0x0153, 0x017e, 0x0178,
])

// Every server encoding holds ASCII; of another than these two nothing more is assumed.
function holdsIn(encoding: string): (codePoint: number) => boolean {
  if (encoding === 'LATIN1') return (cp) => cp <= 0xff
  if (encoding === 'WIN1252')
    return (cp) => cp < 0x80 || (cp >= 0xa0 && cp <= 0xff) || WIN1252_HIGH.has(cp)
  return (cp) => cp < 0x80
}

/**
 * The fit of a database in `encoding` (server_encoding's name): in UTF8, and in SQL_ASCII, which
 * converts nothing, `storable` alone; in any other, each character it lacks written as its code
 * point, "\u{4E2D}", which a reader can still tell.
 */
export function fitFor(encoding: string): Fit {
  if (encoding === 'UTF8' || encoding === 'SQL_ASCII') return storable
  const holds = holdsIn(encoding)
  return (text) => {
    const s = storable(text)
    if (!/\P{ASCII}/u.test(s)) return s
    let out = ''
    for (const ch of s) {
      const cp = ch.codePointAt(0)!
      out += holds(cp) ? ch : `\\u{${cp.toString(16).toUpperCase()}}`
    }
    return out
  }
}

/**
 * Runs `write` (one statement, not in a transaction of the caller's) with the texts it stores put
 * through `db`'s fit. A statement refused for a character the database's encoding lacks (22P05)
 * learns that encoding (read once) and is run again with it: before, a Graph error quoting a name
 * in another script failed its row's settlement at every try, and the row, unrecorded past half
 * a lease, was reclaimed as an interrupted send and sent again.
 */
export async function writingStorable<T>(
  db: Kysely<Database>,
  write: (fit: Fit) => Promise<T>,
): Promise<T> {
  const known = fits.get(db)
  try {
    return await write(known ?? storable)
  } catch (err) {
    if (known !== undefined || (err as { code?: unknown }).code !== UNTRANSLATABLE) throw err
    const { rows } = await sql<{
      encoding: string
    }>`select current_setting('server_encoding') as encoding`.execute(db)
    const fit = fitFor(rows[0]?.encoding ?? 'UTF8')
    // A 22P05 of another kind (jsonb's \u0000): nothing to learn.
    if (fit === storable) throw err
    fits.set(db, fit)
    return write(fit)
  }
}
