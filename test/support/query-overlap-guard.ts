// Records every query a pg Client is handed while one is unanswered on it: pg@8 queues it (and warns once the queue is not empty), pg@9 refuses it.
// What pg@9 may change under it (checked against pg 8.23.1): it reads the client's private fields
// _queryable, _ending, pipeline, and _activeQuery and _queryQueue, where pg@8 moved them when it
// deprecated the public activeQuery and queryQueue "to support pipeline mode"
// (https://github.com/brianc/node-postgres/pull/3510), and whose queue it deprecated for pg@9
// (https://github.com/brianc/node-postgres/pull/3603, where replacing it by automatic pipelining
// was proposed; 8.23 added opt-in pipelining, _sentQueryQueue beside them,
// https://github.com/brianc/node-postgres/pull/3652). A field renamed or gone reads as undefined
// here, so the guard would pass every query silently: test/integration/query-overlap-guard.test.ts
// fails then, as it expects an overlap recorded. Under pg@9 an overlap may be pipelined rather
// than refused; the guard still holds the code to one query at a time per client.
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
}

/**
 * pg@8 runs one query at a time on a client and queues the rest behind it (with a DeprecationWarning,
 * once per process, only when the queue already holds one); pg@9 drops the queue. This wrapper
 * catches every query handed to a client while an earlier one is running or queued there, with the
 * caller's stack. A pipelining client (`pipeline: true`) is meant to take several. Installed once per
 * process however many files import it.
 */
export function guardQueryOverlaps(): void {
  if (globalThis.__queryOverlaps) return
  const overlaps: string[] = []
  globalThis.__queryOverlaps = overlaps
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown
  pg.Client.prototype.query = function (this: ClientQueue, ...args: unknown[]) {
    const busy = (this._activeQuery ? 1 : 0) + (this._queryQueue?.length ?? 0)
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
