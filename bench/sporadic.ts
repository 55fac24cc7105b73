// Pickup after a quiet spell: each system gets one row per gap (longer than a pool's idle timeout), taking turns.
import { clientInThisProcess, PICKUP_WAIT_MS, pickupPercentile, pickupRecorder } from './latency.ts'
import { STALL_MS, watchStalls } from './stalls.ts'
import type { BenchSystem } from './systems/system.ts'

export interface SporadicResult {
  /** Commit → handler (or send start), one per row, in order. */
  latenciesMs: number[]
  /**
   * Per row (not for the binary): the longest event-loop stall, inside its pickup, of the process
   * the system's client runs in, in ms (0: none of 10 ms or more). In the benchmark's own process
   * that is mostly another system's work; in a process of its own, the system's own.
   */
  stalledMs?: number[]
  /** Null: among the rows never picked up (latency.ts's PICKUP_WAIT_MS). */
  p50: number | null
  max: number | null
  missing: number
}

/**
 * Small teams' outboxes see a row now and then, not 50 a second: between two rows a worker sits
 * idle, and whatever it lets go of while idle (pooled connections, warm caches) the next row pays
 * for. All systems run at once, each on its own database; their rows are spread across each gap so
 * that no two systems handle a row at the same moment.
 */
export async function sporadicRun(
  systems: BenchSystem[],
  o: { rounds: number; gapMs: number; concurrency: number },
): Promise<Map<string, SporadicResult>> {
  const pickups = new Map(systems.map((s) => [s.name, pickupRecorder()]))
  for (const s of systems) await s.reset()
  await Promise.all(
    systems.map((s) =>
      s.start({
        concurrency: o.concurrency,
        onStart: pickups.get(s.name)!.onStart,
        watchStallsMs: STALL_MS,
      }),
    ),
  )
  const out = new Map<string, SporadicResult>()
  const here = systems.some(clientInThisProcess) ? watchStalls(STALL_MS) : null
  try {
    const step = o.gapMs / systems.length
    // The first row also comes after a full gap of idleness.
    const begin = performance.now() + o.gapMs
    for (let round = 0; round < o.rounds; round++) {
      for (const [i, s] of systems.entries()) {
        const wait = begin + round * o.gapMs + i * step - performance.now()
        if (wait > 0) await Bun.sleep(wait)
        await s.insertOne(round + 1)
        pickups.get(s.name)!.committed(round + 1)
      }
    }
    const deadline = performance.now() + PICKUP_WAIT_MS
    for (const s of systems) {
      while (performance.now() < deadline && (await s.remaining()) > 0) await Bun.sleep(20)
    }
  } finally {
    here?.stop()
    await Promise.all(systems.map((s) => s.stop()))
  }
  for (const s of systems) {
    const latenciesMs = await pickups.get(s.name)!.latencies(s)
    const stalledMs = await pickups.get(s.name)!.stalls(s, here)
    const missing = o.rounds - latenciesMs.length
    out.set(s.name, {
      latenciesMs,
      ...(stalledMs ? { stalledMs } : {}),
      p50: pickupPercentile(latenciesMs, missing, 50),
      max: pickupPercentile(latenciesMs, missing, 100),
      missing,
    })
  }
  return out
}
