// A value made once and shared by every caller, made again by the next caller after a failed try.

/**
 * `make` runs at the first call; callers until it settles share that try. A success is kept; a
 * failure fails those callers only (a build or start cut short, say a hook timed out under load),
 * and the next call tries again instead of failing every later file of the run.
 */
export function madeOnce<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | null = null
  return () => {
    made ??= make().catch((err: unknown) => {
      made = null
      throw err
    })
    return made
  }
}
