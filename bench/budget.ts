// The suite's time budget for its drains: autovacuum waits, then drain caps, give way only when the run would overrun.
export interface DrainAllowance {
  capMs: number
  /** At most this long waiting for autovacuum workers to finish before the drain. */
  quietMaxMs: number
  /** The cap is shorter than asked, to keep the run within its budget. */
  cut: boolean
}

export interface DrainBudget {
  /** What the next drain of `key` may take; drains are asked for in the order `plan` listed them. */
  next(key: string): DrainAllowance
  /** The wall time a drain of `key` took, set-up and stop included (also an estimate, before any). */
  took(key: string, ms: number): void
  /** Drains whose cap was cut. */
  cuts(): number
  /** Drains whose autovacuum wait was shortened (their cap kept). */
  shortWaits(): number
}

export interface BudgetOptions {
  /** Every drain still to run, in order (a key may repeat: one entry per drain). */
  plan: readonly string[]
  /** When the last drain should have ended (performance.now() time). */
  deadline: number
  capMs: number
  quietMaxMs: number
  /** A cut never takes a drain's cap below this, nor any shortened wait below `minQuietMs`. */
  minCapMs: number
  minQuietMs: number
  /** A drain not yet seen is expected to take its cap and this much more (set-up, insert, stop). */
  overheadMs: number
  /**
   * Overruns up to this are met by shortening the autovacuum waits alone, which changes no figure
   * of a drain; beyond it the caps are cut too.
   */
  waitSlackMs: number
  now?: () => number
}

export function drainBudget(o: BudgetOptions): DrainBudget {
  const now = o.now ?? (() => performance.now())
  const left = [...o.plan]
  const lastTook = new Map<string, number>()
  let cuts = 0
  let shortWaits = 0
  const expected = (key: string) => lastTook.get(key) ?? o.capMs + o.overheadMs
  return {
    next(key) {
      const i = left.indexOf(key)
      if (i >= 0) left.splice(i, 1)
      const ahead = expected(key) + left.reduce((sum, k) => sum + expected(k), 0)
      const excess = now() + ahead - o.deadline
      if (excess <= 0) return { capMs: o.capMs, quietMaxMs: o.quietMaxMs, cut: false }
      if (excess <= o.waitSlackMs) {
        shortWaits += 1
        return { capMs: o.capMs, quietMaxMs: o.minQuietMs, cut: false }
      }
      cuts += 1
      // The overrun spread over this drain and the rest: each gives up its share of it.
      const share = excess / (left.length + 1)
      return {
        capMs: Math.max(o.minCapMs, o.capMs - share),
        quietMaxMs: o.minQuietMs,
        cut: true,
      }
    },
    took(key, ms) {
      lastTook.set(key, ms)
    },
    cuts: () => cuts,
    shortWaits: () => shortWaits,
  }
}
