// The LISTEN session's ask for the server's TCP keepalive (server-keepalive.ts), made once per session before it takes the liveness lock; a refusal told once.
import type pg from 'pg'
import { untilAborted, waitAtMost } from '../clock.ts'
import { serverKeepaliveFor, setServerKeepalive } from '../db/server-keepalive.ts'
import type { ListenerDeps } from './listener-deps.ts'

/**
 * The ask each of a listener's sessions makes once connected (a direct one: a pooler's LISTEN is
 * not kept), bounded by a check's timeout, and over at once when `stopping` aborts (the caller
 * then ends the session: a stop waits for no slow answer, and takes no lock after it). A failure
 * leaves the session as it was (the system's keepalive: a vanished machine's lock lasts hours, as
 * before) and never stops it: a server or proxy that refuses it refuses every session's, so it is
 * told once, the listener's first; an ask cut short by the stop is no refusal.
 */
export function serverKeepaliveAsk(
  d: Pick<ListenerDeps, 'db' | 'log' | 'clock' | 'checkIntervalMs'>,
  timeoutMs: number,
): (client: pg.Client, stopping: AbortSignal) => Promise<void> {
  const keepalive = serverKeepaliveFor(d.checkIntervalMs)
  let told = false
  return async (client, stopping) => {
    if (stopping.aborted) return
    try {
      await untilAborted(
        waitAtMost(d.clock, setServerKeepalive(client, keepalive), timeoutMs),
        stopping,
      )
    } catch (err) {
      if (told || stopping.aborted) return
      told = true
      d.log.warn(
        "could not set the LISTEN session's TCP keepalive on the server; if this machine vanishes, other workers count it live until the server's own keepalive ends its session (2 hours by default)",
        { db: d.db, err },
      )
    }
  }
}
