// A time filter's [from, to) window that holds no instant: refused naming its end, not answered as no rows.
import type { z } from '@hono/zod-openapi'

const WINDOWS = [
  ['createdFrom', 'createdTo'],
  ['sentFrom', 'sentTo'],
] as const

type Bounds = Partial<Record<(typeof WINDOWS)[number][number], string | undefined>>

/**
 * A bound (already a valid timestamp with a zone) in microseconds since 1970, as Postgres keeps it,
 * and whether that is exact: digits past the sixth Postgres rounds, so such a bound is only known
 * to the microsecond below it (Date.parse alone keeps milliseconds).
 */
function microseconds(bound: string): { us: bigint; exact: boolean } | null {
  const fraction = /\.(\d+)/.exec(bound)?.[1] ?? ''
  const ms = Date.parse(bound.replace(/\.\d+/, `.${fraction.slice(0, 3).padEnd(3, '0')}`))
  // A bound its own schema refused (this refinement still sees it, year 0 included): its issue says so.
  if (Number.isNaN(ms) || bound.startsWith('0000-')) return null
  const below = BigInt(fraction.slice(3, 6).padEnd(3, '0'))
  return { us: BigInt(ms) * 1000n + below, exact: fraction.length <= 6 }
}

/** True when [from, to) surely holds no instant: to before from, or both the same exact microsecond. */
function empty(from: string, to: string): boolean {
  const f = microseconds(from)
  const t = microseconds(to)
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
