// The order bench/drain-turns.ts drains its systems in: every system once per rep and concurrency, in turns.
import { rotated } from './turns.ts'

export interface DrainTurn<T> {
  rep: number
  concurrency: number
  system: T
}

/**
 * Rep by rep, concurrency by concurrency, every system once, the order rotated from one rep to the
 * next. A `pair` (ours and another checkout's engine, compared drain by drain) drains back to back
 * after the other systems, which goes first swapping from one rep and concurrency to the next. Left
 * in the rotation, one engine followed graphile-worker in most turns and the other followed it
 * (round 43): what a drain inherits from the one before (its garbage's autovacuum, warm caches) then
 * fell on one side. Now the first of the pair follows the same systems whichever engine it is, and
 * the second follows its partner; with an even number of reps each engine goes first equally often
 * at each concurrency.
 */
export function drainOrder<T>(
  systems: readonly T[],
  reps: number,
  concurrencies: readonly number[],
  pair?: readonly [T, T],
): DrainTurn<T>[] {
  const rest = pair ? systems.filter((s) => !pair.includes(s)) : systems
  const out: DrainTurn<T>[] = []
  for (let rep = 0; rep < reps; rep++) {
    concurrencies.forEach((concurrency, i) => {
      const both = pair ? ((rep + i) % 2 === 0 ? pair : [pair[1], pair[0]]) : []
      for (const system of [...rotated(rest, rep), ...both]) out.push({ rep, concurrency, system })
    })
  }
  return out
}
