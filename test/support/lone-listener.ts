// A LISTEN session's listener with no drainer behind it (its wakes go nowhere), its events recorded: for tests of the session itself.
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createListener, type Listener } from '../../src/outbox/listener.ts'
import type { ListenerDeps } from '../../src/outbox/listener-deps.ts'
import { createEventLog, type EventLog } from './events.ts'

export interface LoneListener {
  listener: Listener
  events: EventLog
  /** Starts the listener and resolves once its session listens (within `timeoutMs`, the log's default unless given). */
  listening(timeoutMs?: number): Promise<void>
}

/**
 * A listener on `url`, database 'test', LISTEN_MODE auto, with tests' bounds: a check every
 * 10 minutes (none within a test unless it shortens them), each given 1 s, reconnects at most
 * 500 ms apart. `o` replaces any of them.
 */
export function loneListener(url: string, o: Partial<ListenerDeps> = {}): LoneListener {
  const events = createEventLog()
  const listener = createListener({
    db: 'test',
    url,
    log: silentLogger,
    clock: systemClock,
    wake: () => {},
    owedRowsHeld: () => {},
    workerStopped: () => {},
    onEvent: events.handler,
    checkIntervalMs: 600_000,
    checkTimeoutMs: 1000,
    maxBackoffMs: 500,
    mode: 'auto',
    ...o,
  })
  return {
    listener,
    events,
    async listening(timeoutMs) {
      listener.start()
      await events.waitFor((e) => e.type === 'listener' && e.state === 'listening', timeoutMs)
    },
  }
}
