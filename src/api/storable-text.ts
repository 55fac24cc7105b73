// Refuses what Postgres text and jsonb cannot hold in a request value: U+0000, unpaired surrogates, deep nesting.
import type { z } from '@hono/zod-openapi'

const NUL = '\u0000'
export const NUL_MESSAGE = 'must not contain the NUL character (U+0000)'
// JSON may escape one half of a pair alone ("\ud800"): jsonb refuses it (22P02, else a 500),
// and a text parameter reaches Postgres with U+FFFD in its place (UTF-8 cannot encode it).
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
const LONE_SURROGATE_MESSAGE = 'must not contain an unpaired UTF-16 surrogate (U+D800-U+DFFF)'

// isWellFormed (ES2024) is false exactly where LONE_SURROGATE matches: one native pass, where the
// expression's lookbehind took several ms on a message's MBs of text.
const whyUnstorable = (s: string) =>
  s.includes(NUL) ? NUL_MESSAGE : s.isWellFormed() ? null : LONE_SURROGATE_MESSAGE

// A key is named with what it cannot hold spelled out, so the problem's path stays printable.
const keyOf = (k: string) =>
  k.replace(
    new RegExp(`${NUL}|${LONE_SURROGATE.source}`, 'g'),
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )

// A message is a few levels deep (message.attachments[0].filename); one nested thousands deep
// would overflow this walk's stack and JSON.stringify's (a 500), and Postgres's jsonb parser stops
// at its stack depth limit. Refused at a depth no request needs, named by its path.
const MAX_DEPTH = 32
const DEPTH_MESSAGE = `nests deeper than ${MAX_DEPTH} levels`

type Found = { path: (string | number)[]; message: string }

function unstorable(v: unknown, path: (string | number)[], out: Found[]) {
  if (path.length > MAX_DEPTH) {
    out.push({ path, message: DEPTH_MESSAGE })
    return
  }
  if (typeof v === 'string') {
    const message = whyUnstorable(v)
    if (message) out.push({ path, message })
  } else if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) unstorable(item, [...path, i], out)
  } else if (v !== null && typeof v === 'object') {
    for (const [k, item] of Object.entries(v)) {
      const message = whyUnstorable(k)
      if (message) out.push({ path: [...path, keyOf(k)], message })
      else unstorable(item, [...path, k], out)
    }
  }
}

/**
 * The schema, refusing every string (and object key) Postgres cannot store and any nesting past
 * MAX_DEPTH, each named by its path. Walks the whole value, so keys a loose object passes through to
 * Postgres are covered too.
 */
export function withStorableText<S extends z.ZodType>(schema: S): S {
  return schema.superRefine((value, ctx) => {
    const found: Found[] = []
    unstorable(value, [], found)
    for (const { path, message } of found) ctx.addIssue({ code: 'custom', path, message })
  }) as S
}
