// A query string whose percent-encoding is malformed is a 400 naming the parameter: Hono keeps such a value as its literal text.
import type { MiddlewareHandler } from 'hono'
import { AppError } from '../errors.ts'

// A run of escapes, a % that does not start one among them: a run decodes only as a whole (a UTF-8
// letter's bytes are several escapes), so the run is what is shown when it does not.
const ESCAPES = /(?:%[0-9A-Fa-f]{2}|%[^%]{0,2})+/g

function decodes(run: string): boolean {
  try {
    decodeURIComponent(run)
    return true
  } catch {
    return false
  }
}

/** The first escape run of `raw` that is not percent-encoded UTF-8, or null when all decode. */
function badSequence(raw: string): string | null {
  for (const [run] of raw.matchAll(ESCAPES)) {
    if (/^(?:%[0-9A-Fa-f]{2})+$/.test(run) && decodes(run)) continue
    return run.length > 24 ? `${run.slice(0, 24)}…` : run
  }
  return null
}

const WHY =
  'is not valid percent-encoding: each % takes two hex digits and the bytes they make must be UTF-8 (a literal % is %25)'

/**
 * Checks every name and value of the request's query before any route reads it: a malformed one
 * would be matched as its literal text (a tenant "%E0%A4%A" lists nothing, a ?db= is "unknown").
 */
export const wellFormedQuery: MiddlewareHandler = async (c, next) => {
  const url = c.req.url
  const start = url.indexOf('?')
  if (start >= 0 && url.includes('%', start)) {
    for (const piece of url.slice(start + 1).split('&')) {
      const eq = piece.indexOf('=')
      const rawName = eq < 0 ? piece : piece.slice(0, eq)
      const badName = badSequence(rawName)
      const bad = badName ?? (eq < 0 ? null : badSequence(piece.slice(eq + 1)))
      if (bad === null) continue
      const path = badName === null ? decodeURIComponent(rawName.replaceAll('+', ' ')) : rawName
      const message = `${WHY}: "${bad}"`
      throw new AppError('validation_failed', `${path}: ${message}`, {
        errors: [{ path, message }],
      })
    }
  }
  return next()
}
