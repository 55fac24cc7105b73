// The rows a running worker released for its own loop to claim again: owed to the other workers should it stop before a claim that could take them.
/**
 * A row released while the worker runs (its last check found it busy, its lease's margin spent, its
 * templates unloadable) goes back pending and due at once, and wakes only this worker's own loop
 * (its due timer): nobody else is told, so that a release costs no notification. A stop that began
 * before that loop's next claim, or during a claim whose statement began before the release
 * committed, left the row to the other workers' backstop poll (POLL_INTERVAL_SECONDS, 30 s by
 * default). Counted here, the stop wakes them only when such a row may still wait (peer-wake.ts):
 * a stop after healthy sends, or after a claim that took every row due, asks no statement more.
 * Invariant: `owed()` is true while a release counted has no claim statement begun after its
 * commit and answered short of its limit (every row then due to this worker taken, or none was).
 */
export interface OwnReleases {
  /** A release committed while the worker runs, its row pending. */
  released(): void
  /** A claim statement is about to begin: its mark, for `claimedAll`. */
  claimBegins(): number
  /** The claim begun at `mark` answered short of its limit: the releases counted before it are claimed. */
  claimedAll(mark: number): void
  /** Whether a row released while the worker ran may still wait, unclaimed, for its own loop. */
  owed(): boolean
}

export function createOwnReleases(): OwnReleases {
  let releases = 0
  let claimed = 0
  return {
    released() {
      releases++
    },
    claimBegins: () => releases,
    claimedAll(mark) {
      claimed = Math.max(claimed, mark)
    },
    owed: () => releases > claimed,
  }
}
