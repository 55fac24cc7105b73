// Refuses U+0000 anywhere in a request value: Postgres text and jsonb cannot hold it (22021, 22P05).
import type { z } from '@hono/zod-openapi'

const NUL = '\u0000'
export const NUL_MESSAGE = 'must not contain the NUL character (U+0000)'

// A key is named with its NUL spelled out, so the problem's path stays printable.
const keyOf = (k: string) => k.replaceAll(NUL, '\\u0000')

function nulPaths(v: unknown, path: (string | number)[], out: (string | number)[][]) {
  if (typeof v === 'string') {
    if (v.includes(NUL)) out.push(path)
  } else if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) nulPaths(item, [...path, i], out)
  } else if (v !== null && typeof v === 'object') {
    for (const [k, item] of Object.entries(v)) {
      if (k.includes(NUL)) out.push([...path, keyOf(k)])
      else nulPaths(item, [...path, k], out)
    }
  }
}

/**
 * The schema, refusing every string (and object key) that holds U+0000, each named by its path.
 * Walks the whole value, so keys a loose object passes through to Postgres are covered too.
 */
export function withoutNul<S extends z.ZodType>(schema: S): S {
  return schema.superRefine((value, ctx) => {
    const found: (string | number)[][] = []
    nulPaths(value, [], found)
    for (const path of found) ctx.addIssue({ code: 'custom', path, message: NUL_MESSAGE })
  }) as S
}
