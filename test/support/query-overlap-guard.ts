// Records every query a pg Client is handed while another waits queued on it (pg@8 warns, pg@9 refuses), or, strict, while one runs.
import { afterAll } from 'bun:test'
import pg from 'pg'

interface ClientQueue {
  _activeQuery?: unknown
  _queryQueue?: unknown[]
  _queryable?: boolean
  _ending?: boolean
  pipeline?: boolean
}

declare global {
  var __queryOverlaps: string[] | undefined
  var __queryOverlapsStrict: boolean | undefined
}

/**
 * pg warns (DeprecationWarning, once per process) when `client.query()` finds another query queued
 * behind the running one; this wrapper catches every such call, with the caller's stack, and, while
 * strict (strictQueryOverlaps), every call made while one runs: the second query of two is what
 * runs queued behind something else. Installed once per process however many files import it.
 */
export function guardQueryOverlaps(): void {
  if (globalThis.__queryOverlaps) return
  const overlaps: string[] = []
  globalThis.__queryOverlaps = overlaps
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown
  pg.Client.prototype.query = function (this: ClientQueue, ...args: unknown[]) {
    const strict = globalThis.__queryOverlapsStrict || process.env.QUERY_OVERLAP_STRICT === '1'
    const running = strict && this._activeQuery ? 1 : 0
    const busy = running + (this._queryQueue?.length ?? 0)
    if (busy > 0 && this._queryable !== false && !this._ending && !this.pipeline) {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown })?.text
      overlaps.push(
        `query while ${busy} unanswered: ${String(text).slice(0, 120)}\n${new Error('overlap').stack}`,
      )
    }
    return query.apply(this, args)
  } as typeof pg.Client.prototype.query
}

/** The overlaps recorded since the last call, removed. */
export function takeQueryOverlaps(): string[] {
  const overlaps = globalThis.__queryOverlaps ?? []
  return overlaps.splice(0, overlaps.length)
}

/**
 * From here to the end of the calling file, a query handed to a client while one runs counts too.
 * Not yet the suite's default: only the files that call it have been run with it (the shared
 * session's and migrate's). QUERY_OVERLAP_STRICT=1 in the environment makes every file of a run strict.
 */
export function strictQueryOverlaps(): void {
  globalThis.__queryOverlapsStrict = true
  afterAll(() => {
    globalThis.__queryOverlapsStrict = false
  })
}
