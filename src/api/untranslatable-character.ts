// A request value holding a character the database's encoding has not (SQLSTATE 22P05 in a WIN1252 or LATIN1 database): the field named, the encoding and the deploy guide's section said.
import type { Context } from 'hono'
import { AppError } from '../errors.ts'
import type { AppEnv } from './context.ts'

/** What Postgres could not convert: the character (its code point) and the encoding that lacks it. */
export interface Untranslatable {
  codePoint: string
  character: string
  encoding: string | null
}

// Postgres's report_untranslatable_char ("character with byte sequence 0xf0 0x9f 0x98 0x80 in
// encoding "UTF8" has no equivalent in encoding "WIN1252""). 22P05 is also jsonb's "unsupported
// Unicode escape sequence" (U+0000): the routine, never translated, tells them apart; the bytes
// and the encoding's name are placeholders, the same in every lc_messages.
const ROUTINE = 'report_untranslatable_char'
const BYTES = /0x[0-9a-f]{2}(?: 0x[0-9a-f]{2})*/i
const LAST_ENCODING = /([A-Z][A-Z0-9_]+)\W*$/

/** The untranslatable character of a database error, null for any other error. */
export function untranslatableOf(err: unknown): Untranslatable | null {
  const e = err as { code?: unknown; routine?: unknown; message?: unknown }
  if (e?.code !== '22P05' || e.routine !== ROUTINE || typeof e.message !== 'string') return null
  const bytes = e.message.match(BYTES)?.[0]
  if (!bytes) return null
  const raw = Uint8Array.from(bytes.split(' ').map((b) => Number.parseInt(b.slice(2), 16)))
  const character = new TextDecoder().decode(raw)
  const point = character.codePointAt(0) ?? 0xfffd
  return {
    character,
    codePoint: `U+${point.toString(16).toUpperCase().padStart(4, '0')}`,
    encoding: e.message.match(LAST_ENCODING)?.[1] ?? null,
  }
}

/** What is said of each field holding it. */
export function cannotHoldMessage(u: Untranslatable): string {
  const encoding = u.encoding
    ? `the database's encoding (${u.encoding})`
    : "the database's encoding"
  return `holds ${u.codePoint}, a character ${encoding} cannot hold: the database must be UTF8 (deploy guide, "Database encoding")`
}

// The paths of the strings (and object keys) holding `character`, as the validator names them.
function pathsHolding(v: unknown, character: string, path: string[], out: string[]) {
  if (typeof v === 'string') {
    if (v.includes(character)) out.push(path.join('.') || '(root)')
  } else if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) pathsHolding(item, character, [...path, String(i)], out)
  } else if (v !== null && typeof v === 'object') {
    for (const [k, item] of Object.entries(v)) {
      if (k.includes(character)) out.push([...path, k].join('.'))
      else pathsHolding(item, character, [...path, k], out)
    }
  }
}

/**
 * The refusal of a request that met `u`, naming each query parameter and body field holding the
 * character (a request value in general when none does: a token's claim). Postgres stops at the
 * first character it cannot convert: another may follow in another field.
 */
export async function untranslatableRefusal(
  c: Context<AppEnv>,
  u: Untranslatable,
): Promise<AppError> {
  const message = cannotHoldMessage(u)
  const paths: string[] = []
  // Each parameter named alone, as the validator names a query's (FLAT_TARGETS, validation-hook.ts).
  for (const [name, values] of Object.entries(c.req.queries())) {
    if (name.includes(u.character) || values.some((v) => v.includes(u.character))) paths.push(name)
  }
  const body = c.req.method === 'POST' ? await c.req.json().catch(() => undefined) : undefined
  pathsHolding(body, u.character, [], paths)
  if (paths.length === 0) return new AppError('validation_failed', `a request value ${message}`)
  const errors = paths.map((path) => ({ path, message }))
  const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ')
  return new AppError('validation_failed', detail, { errors })
}
