// Records every query a pg Client is handed while it already holds one queued behind the running one (pg@9 makes that an error).
import pg from 'pg'

interface ClientQueue {
  _queryQueue?: unknown[]
  _queryable?: boolean
  _ending?: boolean
  pipeline?: boolean
}

declare global {
  var __queryOverlaps: string[] | undefined
}

/**
 * pg warns (DeprecationWarning, once per process) when `client.query()` finds its queue non-empty;
 * this wrapper catches every such call, with the caller's stack, in the same condition pg tests.
 * Installed once per process however many files import it.
 */
export function guardQueryOverlaps(): void {
  if (globalThis.__queryOverlaps) return
  const overlaps: string[] = []
  globalThis.__queryOverlaps = overlaps
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown
  pg.Client.prototype.query = function (this: ClientQueue, ...args: unknown[]) {
    const queued = this._queryQueue?.length ?? 0
    if (queued > 0 && this._queryable !== false && !this._ending && !this.pipeline) {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown })?.text
      overlaps.push(
        `query while ${queued} queued: ${String(text).slice(0, 120)}\n${new Error('overlap').stack}`,
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
