// A timer that keeps no process alive, and the shape of the timer the token source's refresh-ahead is given.

/** Calls `fn` once `ms` have passed; returns its cancel. */
export type SetTimer = (ms: number, fn: () => void) => () => void

/** A real timer that keeps no process alive: a `serve` stopping clears it, any other exits past it. */
export const unrefTimer: SetTimer = (ms, fn) => {
  const timer = setTimeout(fn, ms)
  timer.unref()
  return () => clearTimeout(timer)
}
