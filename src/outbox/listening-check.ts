// The LISTEN session's timed check that it still listens; on a shared session, run in its owner's turn.
import type pg from 'pg'
import { monotonicNow, waitAtMost } from '../clock.ts'
import { listeningPid } from './listen-session.ts'
import type { ListenerDeps } from './listener-deps.ts'

/** Whether the session still listens, within `timeoutMs`; false once `over` aborted before its turn. */
export function stillListening(
  client: pg.Client,
  d: Pick<ListenerDeps, 'clock' | 'checkIntervalMs' | 'shared'>,
  c: { timeoutMs: number; over: AbortSignal; answeredAt: () => number },
): Promise<boolean> {
  const check = async () => (await listeningPid(client, c.timeoutMs).catch(() => null)) !== null
  // A statement that was on the session when the check fell due has answered by its turn. A
  // turn that comes after the check's bound finds the session dropped: nothing is sent on it.
  const checkInTurn = async () =>
    !c.over.aborted &&
    (monotonicNow(d.clock) - c.answeredAt() < d.checkIntervalMs || (await check()))
  return d.shared
    ? waitAtMost(d.clock, d.shared.inTurn(checkInTurn), c.timeoutMs).catch(() => false)
    : check()
}
