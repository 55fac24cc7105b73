// A duration written with a unit (90s, 4m, 2 h) read as the whole seconds a *_SECONDS variable takes, to say so when it is refused.

// Each unit's seconds; the words a user writes after a number (Go's and systemd's, and English).
const UNIT_SECONDS: [RegExp, number][] = [
  [/^(ms|msecs?|milliseconds?)$/, 0.001],
  [/^(s|secs?|seconds?)$/, 1],
  [/^(m|mins?|minutes?)$/, 60],
  [/^(h|hrs?|hours?)$/, 3600],
  [/^(d|days?)$/, 86400],
]

/**
 * The whole seconds `value` (a number and a unit) stands for, when that is within min..max; else
 * null: no number is offered that would be refused in turn, or that is not whole.
 */
export function secondsWritten(value: string, min: number, max: number): number | null {
  const m = /^(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)$/i.exec(value)
  if (!m) return null
  const factor = UNIT_SECONDS.find(([words]) => words.test(m[2]!.toLowerCase()))?.[1]
  if (factor === undefined) return null
  const seconds = Number(m[1]) * factor
  return Number.isInteger(seconds) && seconds >= min && seconds <= max ? seconds : null
}
