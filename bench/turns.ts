// The order systems take turns in: rotated from one turn to the next, so that no system always follows the same one.
//
// A system's run can be slowed by what the one before it left behind (its autovacuum, its processes
// winding down); rotating spreads that over every system alike.

/** `list` started at its `k`-th element (modulo its length) and wrapped around. */
export function rotated<T>(list: readonly T[], k: number): T[] {
  return list.map((_, i) => list[(i + k) % list.length]!)
}
