// A pause's remainder as the statements that read one answer it: bounded (PauseLeftMs), a pause with no end (next_at 'infinity', set by hand) a recheck.
//
// Bounded here, in the binary, and not in SQL (mailer.ms_until, sql/0107, goes on answering
// ±Infinity): an older binary beside this schema calls ms_until and claim_past_paused and must get
// what it got; status tells a pause with no end from a long one, which a bound in SQL would erase;
// the recheck is this binary's policy, changed without a migration; and the hot path's statements
// stay as they are. Each statement function that reads a remainder parses its answer here, once:
// a reader downstream gets a PauseLeftMs and cannot meet Infinity.

/**
 * How long a row given back for a pause with no end waits before it is looked at again (and how
 * soon a worker claims again to see the pause lifted): the operator who set it lifts it by hand.
 */
export const ENDLESS_PAUSE_RECHECK_MS = 60_000

declare const bounded: unique symbol

/**
 * Milliseconds a pause (or a pacing turn) still lasts: finite and >= 0. Made only by pauseLeftMs,
 * in the statement functions that read a remainder, so it can go to make_interval (which refuses
 * Infinity: 22008 interval out of range) or a timer (which ignores it) as it is.
 */
export type PauseLeftMs = number & { readonly [bounded]: true }

/** The database's answer (mailer.ms_until; in JSON, the string "Infinity") is a pause with no end. */
export function isEndlessPause(answer: number | string): boolean {
  return Number(answer) === Number.POSITIVE_INFINITY
}

/**
 * A remainder as the database answered it, bounded: a pause with no end reads as
 * ENDLESS_PAUSE_RECHECK_MS (as does an answer that is no number), one ended long ago
 * ('-infinity') or already as 0, a finite one as it is.
 */
export function pauseLeftMs(answer: number | string): PauseLeftMs {
  const n = Number(answer)
  if (Number.isFinite(n)) return Math.max(0, n) as PauseLeftMs
  return (n === Number.NEGATIVE_INFINITY ? 0 : ENDLESS_PAUSE_RECHECK_MS) as PauseLeftMs
}
