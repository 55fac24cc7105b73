// The stop of `serve`: the drainers within the grace, then the listeners, the HTTP servers and the pools; sends left unrecorded said.
import type { GraphConfig } from './config/graph-settings.ts'
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

/**
 * The stop's last line when sends stay unrecorded: what the claim after each reclaimed lease does
 * with such a row (marked interrupted) under this process's settings, the ones its own workers
 * claim by: looked up in the mailbox (GRAPH_MAILBOX_LOOKUP=true), else as AMBIGUOUS_SEND_POLICY
 * says; without Graph (file, discard) there is no lookup and no policy: sent again.
 */
export function unrecordedStopLine(graph: GraphConfig | null): string {
  const fate = graph?.mailboxLookup
    ? 'looked up in the mailbox once their leases expire'
    : graph?.ambiguousSendPolicy === 'hold'
      ? 'held for an operator once their leases expire (failed ambiguous_send, not sent again)'
      : 'sent again once their leases expire'
  return `stopped with accepted sends unrecorded: ${fate}`
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
  /** The process's Graph settings (null: another transport): the last line's words. */
  graph: GraphConfig | null
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
  // Its exit is 1 then (run-until-signalled.ts): each of them is reclaimed as an interrupted send.
  if (unrecorded.length === 0) log.info('stopped')
  else log.error(unrecordedStopLine(s.graph), { unrecorded })
}
