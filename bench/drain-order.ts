// The order bench/drain-turns.ts drains its systems in: every system once per rep and concurrency, in turns.
import { rotated } from './turns.ts'

export interface DrainTurn<T> {
  rep: number
  concurrency: number
  system: T
}

/** Rep by rep, concurrency by concurrency, every system once, the order rotated from one rep to the next. */
export function drainOrder<T>(
  systems: readonly T[],
  reps: number,
  concurrencies: readonly number[],
): DrainTurn<T>[] {
  const out: DrainTurn<T>[] = []
  for (let rep = 0; rep < reps; rep++) {
    for (const concurrency of concurrencies) {
      for (const system of rotated(systems, rep)) out.push({ rep, concurrency, system })
    }
  }
  return out
}
