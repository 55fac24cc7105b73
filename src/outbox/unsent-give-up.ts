// A claimed row not sent because its lease may have ended before the send: counted lost once, or handed back uncounted while surely live.
import type { DeliveryDeps } from './deliver.ts'
import type { Finish, Ready } from './send-attempt.ts'

/**
 * A row whose lease may have ended before its send (this process's deadline passed, before or
 * during the last check: `unconfirmed`; or the check refused it: `refused`): it is not sent, and
 * counted as lost once. Its deadline passes with the lease surely not ended (`live`) when a
 * heartbeat's answer is late (a slow database: it extended the lease, past HEARTBEAT_ANSWER_MS):
 * such a row is counted lost only if its release finds it taken (lease-outcome.ts). `stopped`: the
 * stop began while the row waited for that answer; said so, not as slow heartbeats. `outwaited`:
 * the answer held the lease, and taking the permit and the slot again after it used the margin
 * up; said so, as that wait (the provider's slots, a throttle's brief pause), not the heartbeats,
 * is what the operator may look at.
 */
export async function giveUpUnsent(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  why: 'unconfirmed' | 'refused' | 'stopped' | 'outwaited',
): Promise<void> {
  if (d.deadlines?.isLost(r.lease)) {
    // Counted when the heartbeat found it lost.
    d.log.warn('lease lost before the send; not sending', { db: d.dbName, outboxId: r.lease.id })
    d.done(r.lease)
    return
  }
  if (why !== 'refused' && d.deadlines?.live(r.lease)) {
    // Surely still ours unless another claim took it meanwhile: handed back uncounted, fenced by
    // its token, so such a row is left alone (and counted then).
    const ids = { db: d.dbName, outboxId: r.lease.id }
    if (why === 'stopped')
      d.log.info("stopping: a row that waited for its heartbeat's answer is given back unsent", ids)
    else if (why === 'outwaited')
      d.log.warn(
        "lease confirmed by a heartbeat's late answer ran short of the send's margin while the send took its slots again; not sending",
        ids,
      )
    else
      d.log.warn(
        'lease not confirmed with time for the send (heartbeats slow or failing); not sending',
        ids,
      )
    await finish(r.lease, { kind: 'released', unconfirmed: true })
    return
  }
  d.onEvent?.({ type: 'lease_lost', db: d.dbName, id: r.lease.id, during: 'start' })
  // Counted now: the release below finding the row taken must not count it again.
  d.deadlines?.markLost(r.lease)
  // Perhaps still ours (heartbeats failed, nobody reclaimed yet): handed back uncounted, fenced by
  // its token, so a row another claim took meanwhile is left alone.
  d.log.warn('lease ended or lost before the send; not sending', {
    db: d.dbName,
    outboxId: r.lease.id,
  })
  await finish(r.lease, { kind: 'released' })
}
