// A pause with no end (next_at 'infinity', set by hand) read as a bounded wait: a recheck, never Infinity sent back to SQL.

/**
 * How long a row given back for a pause with no end waits before it is looked at again (and how
 * soon a worker claims again to see the pause lifted): the operator who set it lifts it by hand.
 */
export const ENDLESS_PAUSE_RECHECK_MS = 60_000

/**
 * A pause's remainder (ms) as the database answered it: extract(epoch from 'infinity' - now()) is
 * Infinity (the string "Infinity" in JSON), which make_interval refuses (22008 interval out of
 * range) and a timer ignores. Such a pause reads as ENDLESS_PAUSE_RECHECK_MS; a finite one as it is.
 */
export function pauseLeftMs(ms: number | string): number {
  const n = Number(ms)
  return Number.isFinite(n) ? n : ENDLESS_PAUSE_RECHECK_MS
}
