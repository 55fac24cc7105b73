// Claim round: one claim sized to the room the drainer has left, and the hand-over of its rows to delivery.
import { monotonicNow } from '../clock.ts'
import { claimBatch } from './claim.ts'
import { createClaimBeforeGiveBack } from './claim-before-give-back.ts'
import type { ClaimRoundDeps } from './claim-round-deps.ts'
import { createDefaultSenderPause } from './default-sender-pause.ts'
import { deliverBatch } from './deliver.ts'
import { gateAfterRefusalCleared } from './gate-after-refusal-cleared.ts'
import { createLoneTokenWait } from './lone-token-wait.ts'
import { mailFromAddress, noteSenderMailbox } from './past-senders.ts'
import { gateTellingPauses } from './pause-telling-gate.ts'
import { createPausedRowNaming } from './paused-row-naming.ts'
import { createRoundDelivery } from './round-delivery.ts'

interface ClaimRound {
  claimed: number
  /** The claim returned as many rows as it asked for: more may be waiting. */
  full: boolean
  run: Promise<void>
}

export function createClaimRound(
  r: ClaimRoundDeps,
): (notifiedId: string | null) => Promise<ClaimRound> {
  const { d, log, deadlines, due, settle, deliveries } = r
  const { held, unsent, release, batch, maxUnsent, maxHeld } = r.leases
  const cfg = d.config
  // A claim returns its rows as one JSON value, which Postgres caps at 1 GB (SQLSTATE 54000): a few
  // huge rows (a source row with a big bytea) at the head of the claim order would fail every claim
  // and stop the outbox. After such a failure the next `batch` claims take one row each (a row's
  // message and source row are at most 255 MB each, jsonb's own limit).
  let singleRowClaims = 0
  const claim = d.claim ?? claimBatch
  // While MAIL_FROM stands paused its backlog waits unclaimed; a pause's end is probed by one row.
  const pause = createDefaultSenderPause(d.gate, d.mailFrom)
  const gate = gateAfterRefusalCleared(
    gateTellingPauses(d, pause, log, r.besides),
    r.refusalClearing,
  )
  const keptForToken = d.heldForToken
    ? createLoneTokenWait({
        db: d.db,
        ...(d.poolDb && { poolDb: d.poolDb }),
        workerId: d.worker.id,
        log,
        stopping: r.stopping,
        besides: r.besides,
        heldForToken: d.heldForToken,
      })
    : undefined
  const { namePausedRows, pausedMarks } = createPausedRowNaming(
    d,
    pause,
    r.stopping,
    log,
    r.besides,
  )

  // During a stop, rows given back wait for the claim under way (claim-before-give-back.ts).
  const giveBack = createClaimBeforeGiveBack(r.stopping, log)
  const givenBackAfterClaims = giveBack.settle(settle)

  // What every batch's delivery is given: the same for each claim, so built once, not on the way
  // from each claim's answer to its first send.
  const delivery = createRoundDelivery(r, {
    gate,
    pause,
    givenBackAfterClaims,
    wakePeers: r.wakePeers,
    keptForToken,
  })

  // MAIL_FROM noted as a sender before the first claim, so that a row this worker sends from it is
  // looked up there after a redeploy changed MAIL_FROM (past-senders.ts). A failure fails the
  // round as a claim's would (the database away): noted at the next.
  let unnoted = mailFromAddress(d.mailFrom)
  async function claimAndDeliver(notifiedId: string | null): Promise<ClaimRound> {
    if (unnoted !== null) {
      await noteSenderMailbox(d.db, unnoted)
      unnoted = null
    }
    const room = Math.min(batch, maxUnsent - unsent.size, maxHeld - held.size)
    if (room <= 0) return { claimed: 0, full: false, run: Promise.resolve() }
    // Full: the backlog stays known, so the probe's end claims again (roomMade).
    if (pause.limit(room) === 0) return { claimed: 0, full: true, run: Promise.resolve() }
    const limit = singleRowClaims > 0 ? 1 : room
    const pausedSender = pause.claimParam()
    const mailFromGuard = pause.guardParam()
    // Known after the start's registration; else (the database was away then) registered now.
    const owner = r.leaseKey.current() ?? (await r.leaseKey.get())
    const claimSentAt = monotonicNow(d.clock)
    const releasesBefore = r.ownReleases.claimBegins()
    let claimed: Awaited<ReturnType<typeof claimBatch>>
    try {
      claimed = await claim(d.db, {
        limit,
        workerId: owner,
        leaseSeconds: cfg.leaseSeconds,
        defaultMaxAttempts: cfg.maxAttempts,
        markStarted: d.gate.open,
        ...(notifiedId !== null && { notifiedId }),
        ...(pausedSender !== undefined && { pausedSender }),
        ...(mailFromGuard !== undefined && { mailFromGuard }),
      })
    } catch (error) {
      if (limit === 1 || (error as { code?: unknown } | null)?.code !== '54000') throw error
      log.warn('claim too large for one statement; claiming one row at a time for a while', {
        limit,
      })
      singleRowClaims = batch
      return claimAndDeliver(null)
    }
    if (singleRowClaims > 0) singleRowClaims--
    // Short of its limit, a claim that looked for itself took every row then due to this worker:
    // those released before it began among them (one tried alone, or owed, looked at one or none).
    if (notifiedId === null && claimed.owed !== true && claimed.leases.length < limit) {
      r.ownReleases.claimedAll(releasesBefore)
    }
    if (claimed.owed === true && mailFromGuard !== undefined) {
      // MAIL_FROM's pause, or its probe, is owed (another worker met it): claim as one that did.
      pause.mailboxPaused(mailFromGuard.key)
      return claimAndDeliver(null)
    }
    const { leases, nextDueInMs, pausedMs, probeInMs } = claimed
    // A probe still to come is armed here too: its row's due time is folded into nextDueInMs.
    if (nextDueInMs !== null) due.arm(nextDueInMs)
    pause.claimed(pausedMs, leases, probeInMs)
    // MAIL_FROM's rows are due again when its pause ends (less the hold a row would wait it out).
    // A pause past the due timer's horizon (the poll interval) is not armed here, and needs not
    // be: every backstop poll's claim reads the pause again, in database time, and the last one
    // before its end arms the timer for it (measured: a 12-16 s pause under a 3 s poll, the first
    // send 9-12 ms after its end).
    if (pausedMs != null && pausedSender) {
      due.arm(Math.max(0, pausedMs - pausedSender.holdMs))
      namePausedRows(pausedSender.key)
    } else pausedMarks.end()
    if (leases.length === 0) return { claimed: 0, full: false, run: Promise.resolve() }
    for (const l of leases) {
      held.set(l.id, l)
      unsent.add(l)
    }
    deadlines.confirm(leases, claimSentAt)
    d.onEvent?.({ type: 'claimed', db: d.dbName, count: leases.length })
    const run = deliverBatch(delivery, leases).catch((error) => {
      // deliverBatch settles every row itself; reaching here is a bug, and the rows' way out is their
      // leases' expiry and a reclaim: a lease still held is heartbeaten and never expires, and a probe
      // still out holds MAIL_FROM's claims at none (DefaultSenderPause.limit).
      for (const l of leases) {
        pause.done(l)
        release(l)
      }
      log.error('delivery failed', { err: error })
      d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'deliver', error })
    })
    deliveries.add(run)
    void run.finally(() => deliveries.delete(run))
    // A probe's claim is full too: the backlog behind it is claimed once it is done.
    return { claimed: leases.length, full: leases.length === limit || pause.limit(1) === 0, run }
  }
  return (notifiedId) => giveBack.track(claimAndDeliver(notifiedId))
}
