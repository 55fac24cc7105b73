// A time filter's [from, to) window that holds no instant: refused naming its end, not answered as no rows.
import type { z } from '@hono/zod-openapi'
import { boundMicroseconds } from './time-bound.ts'

const WINDOWS = [
  ['createdFrom', 'createdTo'],
  ['sentFrom', 'sentTo'],
] as const

type Bounds = Partial<Record<(typeof WINDOWS)[number][number], string | undefined>>

/** True when [from, to) surely holds no instant: to before from, or both the same exact microsecond. */
function empty(from: string, to: string): boolean {
  // A bound its own schema refused (this refinement still sees it, year 0 included): its issue says so.
  if (from.startsWith('0000-') || to.startsWith('0000-')) return false
  const f = boundMicroseconds(from)
  const t = boundMicroseconds(to)
  if (!f || !t) return false
  return t.us < f.us || (t.us === f.us && f.exact && t.exact)
}

/**
 * Adds an issue at each window's end bound when the window is empty: swapped bounds would answer an
 * empty page (or a dry run matching 0), which an operator reads as "no such rows". Refinement of an
 * object holding the bounds at its top level.
 */
export function windowsHoldTime(value: Bounds, ctx: z.RefinementCtx) {
  for (const [from, to] of WINDOWS) {
    const a = value[from]
    const b = value[to]
    if (a === undefined || b === undefined || !empty(a, b)) continue
    ctx.addIssue({
      code: 'custom',
      path: [to],
      message: `must be later than ${from}: the window [${from}, ${to}) holds no row`,
    })
  }
}
