// Liveness over the running engine: a worker loop stopped, or silent past the wedged bound, is a problem the watchdog exits for.
import type { Drainer } from './drainer.ts'

/** Each database's drainer (null under --role api: nothing to be wedged). */
export function loopLiveness(
  databases: readonly { name: string; drainer: Drainer | null }[],
  /** A loop silent for longer than this is wedged. */
  wedgedAfterMs: number,
): { ok: boolean; problems: string[] } {
  const problems: string[] = []
  for (const d of databases) {
    const s = d.drainer?.status()
    if (!s) continue
    // On the loop's monotonic clock: a wall clock stepped ahead is no silence (the watchdog
    // would exit a working process).
    const silentMs = s.loopSilentMs ?? 0
    if (!s.running) problems.push(`${d.name}: worker loop stopped`)
    else if (silentMs > wedgedAfterMs) {
      problems.push(`${d.name}: worker loop silent for ${Math.round(silentMs / 1000)}s`)
    }
  }
  return { ok: problems.length === 0, problems }
}
