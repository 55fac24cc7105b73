// The wait between a LISTEN session's checks while the worker's liveness lock is not held: the lock tried again every HOLDER_LOCK_RETRY_MS.
import type pg from 'pg'
import { type Clock, monotonicNow } from '../clock.ts'
import { HOLDER_LOCK_RETRY_MS, takeHolderLock } from './holder-lock.ts'
import type { ListenerDeps } from './listener-deps.ts'

/**
 * Takes `holder`'s lock again on the LISTEN session `client`, quietly, in the shared session's
 * turn when it is shared: the note its takes write, or null (not taken, or the statement failed).
 * `held`: as takeHolderLock's.
 */
export function retakeHolderLock(
  client: pg.Client,
  holder: string,
  d: ListenerDeps,
  timeoutMs: number,
  held: (note: string) => void,
): Promise<string | null> {
  const take = () => takeHolderLock(client, holder, { ...d, timeoutMs, quiet: true, held })
  return d.shared ? d.shared.inTurn(take).catch(() => null) : take()
}

/**
 * Waits `intervalMs` (a check's interval). A lock an earlier session still held (its backend not
 * yet ended by the server) is tried again every HOLDER_LOCK_RETRY_MS meanwhile, not at the checks
 * alone: once that backend ends, the slots it noted are seen gone, and taken HOLDER_GONE_MS later
 * unless this session holds it. `retake` null: no lock wanted.
 */
export async function waitCheckInterval(o: {
  clock: Clock
  intervalMs: number
  signal: AbortSignal
  held: () => boolean
  retake: (() => Promise<void>) | null
}): Promise<void> {
  if (o.retake === null || o.held()) return o.clock.sleep(o.intervalMs, o.signal)
  const until = monotonicNow(o.clock) + o.intervalMs
  while (!o.held() && until - monotonicNow(o.clock) > HOLDER_LOCK_RETRY_MS) {
    await o.clock.sleep(HOLDER_LOCK_RETRY_MS, o.signal)
    if (o.signal.aborted) return
    await o.retake()
  }
  await o.clock.sleep(Math.max(0, until - monotonicNow(o.clock)), o.signal)
}
