// The stop of `serve`: the drainers within the grace, then the listeners, the HTTP servers and the pools; sends left unrecorded said.
import type { DbHandle } from './db/open.ts'
import type { Logger } from './log.ts'
import type { Drainer } from './outbox/drainer.ts'
import type { Listener } from './outbox/listener.ts'
import type { UnrecordedSends } from './serve-options.ts'

/**
 * Per database, the sends the provider accepted whose outcome is not recorded: the first
 * UNRECORDED_NAMED named, `more` counting the rest (only when there are).
 */
export function unrecordedSendsOf(drainers: ReadonlyMap<string, Drainer>): UnrecordedSends {
  return [...drainers].flatMap(([db, d]) => {
    const { ids, more } = d.unrecordedSends()
    return ids.length + more === 0 ? [] : [{ db, ids, ...(more > 0 && { more }) }]
  })
}

export async function stopServing(s: {
  log: Logger
  graceSeconds: number
  drainers: ReadonlyMap<string, Drainer>
  listeners: ReadonlyMap<string, Listener>
  servers: readonly ReturnType<typeof Bun.serve>[]
  handles: readonly DbHandle[]
  stopWatchdog: () => void
  reason: string
}): Promise<void> {
  const { log, graceSeconds, drainers, listeners, servers, handles } = s
  log.info('stopping', { reason: s.reason, graceSeconds })
  s.stopWatchdog()
  for (const h of handles) h.stopBegan()
  // The drainers first: claims end with the signal, and the grace is not spent waiting for a
  // listener (a connect in progress, a check) before it even begins: kill_timeout counts from
  // here. The listeners after them: a LISTEN session holds the worker's liveness lock, whose
  // end lets other workers take its send slots (holder-lock.ts), which sends may use until
  // the drainers' wind-down frees them.
  await Promise.all([...drainers.values()].map((d) => d.stop(graceSeconds * 1000)))
  await Promise.all([...listeners.values()].map((l) => l.stop()))
  await Promise.all(servers.map((sv) => sv.stop()))
  await Promise.all(handles.map((h) => h.close()))
  const unrecorded = unrecordedSendsOf(drainers)
  // Its exit is 1 then (run-until-signalled.ts): each of them goes out again once reclaimed.
  if (unrecorded.length === 0) log.info('stopped')
  else
    log.error('stopped with accepted sends unrecorded: sent again once their leases expire', {
      unrecorded,
    })
}
