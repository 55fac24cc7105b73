// Records engine events so tests wait on what happened instead of sleeping.
import type { EngineEvent } from '../../src/outbox/events.ts'

export interface EventLog {
  events: EngineEvent[]
  handler: (e: EngineEvent) => void
  /** Resolves with the first event (past or future) matching; rejects after `timeoutMs`. */
  waitFor<T extends EngineEvent>(match: (e: EngineEvent) => e is T, timeoutMs?: number): Promise<T>
  waitFor(match: (e: EngineEvent) => boolean, timeoutMs?: number): Promise<EngineEvent>
}

export function createEventLog(): EventLog {
  const events: EngineEvent[] = []
  const waiters = new Set<{
    match: (e: EngineEvent) => boolean
    resolve: (e: EngineEvent) => void
  }>()
  return {
    events,
    handler: (e) => {
      events.push(e)
      for (const w of waiters) {
        if (w.match(e)) {
          waiters.delete(w)
          w.resolve(e)
        }
      }
    },
    waitFor(match: (e: EngineEvent) => boolean, timeoutMs = 10_000) {
      const seen = events.find(match)
      if (seen) return Promise.resolve(seen)
      return new Promise<EngineEvent>((resolve, reject) => {
        const w = { match, resolve }
        waiters.add(w)
        setTimeout(() => {
          if (waiters.delete(w))
            reject(new Error(`no matching engine event within ${timeoutMs} ms`))
        }, timeoutMs)
      })
    },
  } as EventLog
}

export const settledFor =
  (id: string, outcome?: string) =>
  (e: EngineEvent): boolean =>
    e.type === 'settled' && e.id === id && (outcome === undefined || e.outcome === outcome)

/** Polls `check` until it returns a value that is not undefined, up to `timeoutMs`. */
export async function pollUntil<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await Bun.sleep(everyMs)
  }
}

/**
 * Polls a count until it reaches `target`, bounded by progress rather than by total time: it fails
 * when the count has not grown for `stallMs`, naming how far it got. A loaded machine stretches a
 * long drain past any total bound; a drain that stops is what a test must catch.
 */
export async function pollUntilCount(
  count: () => Promise<number>,
  target: number,
  stallMs: number,
  everyMs = 100,
): Promise<void> {
  let last = -1
  let grewAt = performance.now()
  for (;;) {
    const n = await count()
    if (n >= target) return
    if (n > last) {
      last = n
      grewAt = performance.now()
    } else if (performance.now() - grewAt > stallMs) {
      throw new Error(`stalled at ${n} of ${target}: no progress within ${stallMs} ms`)
    }
    await Bun.sleep(everyMs)
  }
}
