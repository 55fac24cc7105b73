// Claim round: one claim sized to the room the drainer has left, and the hand-over of its rows to delivery.
import { monotonicNow } from '../clock.ts'
import type { Logger } from '../log.ts'
import { claimBatch } from './claim.ts'
import { createDefaultSenderPause } from './default-sender-pause.ts'
import { deliverBatch } from './deliver.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import type { DueTimer } from './due-timer.ts'
import type { HeldLeases } from './held-leases.ts'
import type { LeaseDeadlines } from './lease-deadlines.ts'
import type { LeaseKey } from './lease-key.ts'
import { oweProbe, probeAnswered } from './owed-probe.ts'
import { mailFromAddress, noteSenderMailbox } from './past-senders.ts'
import { deferPausedRows } from './paused-rows.ts'
import { mailboxKey, type SendGate } from './send-gate.ts'
import { PAUSED_CODE, pausedRowMessage } from './settle-item.ts'
import type { SettleQueue } from './settle-queue.ts'
import type { StartQueue } from './start-queue.ts'
import { createWaitingMarks } from './waiting-marks.ts'

interface ClaimRound {
  claimed: number
  /** The claim returned as many rows as it asked for: more may be waiting. */
  full: boolean
  run: Promise<void>
}

export function createClaimRound(r: {
  d: DrainerDeps
  log: Logger
  leases: HeldLeases
  deadlines: LeaseDeadlines
  due: DueTimer
  settle: SettleQueue
  /** The last check before a send (startSends), shared by the batches. */
  lastChecks: StartQueue
  stopping: AbortSignal
  abort: AbortSignal
  /** Every batch's delivery in flight, until it ends. */
  deliveries: Set<Promise<void>>
  /** A lease was handed over or released: there may be room to claim again. */
  roomMade: () => void
  /** The key the claimed rows name the worker by (lease-key.ts): registered before the first claim. */
  leaseKey: LeaseKey
}): (notifiedId: string | null) => Promise<ClaimRound> {
  const { d, log, deadlines, due, settle, lastChecks, deliveries } = r
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
  // A send of this worker's that pauses MAIL_FROM (the probe meeting the refusal again) says so
  // too, as a row another worker's pause sends back does (onMailboxPaused). One that pauses a
  // mailbox a row names itself, past a row's hold, moves that mailbox's waiting rows to the
  // pause's end (one write each) rather than leaving them to be claimed and given back; not
  // awaited: the send's slot is not held for it, and a failure leaves the rows as they were.
  const gate: SendGate = {
    ...d.gate,
    pause: async (mailbox, ms) => {
      await d.gate.pause(mailbox, ms)
      // A pause rows wait out in place (a 429's second or two) changes nothing for the claims.
      const hold = d.gate.pausedBeyondMs
      if (hold === undefined || ms <= hold) return
      pause.mailboxPaused(mailbox)
      const key = mailboxKey(mailbox)
      // Owed for every worker, before the row that met the pause is settled.
      if (key === pause.key) return oweProbe(d.db, key)
      void deferPausedRows(d.db, key).catch((err) =>
        log.warn('could not move a paused mailbox’s rows to its pause’s end', { err }),
      )
    },
  }

  // MAIL_FROM's rows the claims leave out are told why they wait, as a row given back for the
  // pause is: by one pass per pause, begun by the first claim that finds it standing, then the
  // rows enqueued since at each such claim (at most one naming at a time: a claim's call while one
  // runs comes after it); not awaited, so a claim's rows are not held for it, and a failure leaves
  // the rows as they were.
  const pausedMarks = createWaitingMarks(d.db)
  let naming: 'idle' | 'running' | 'again' = 'idle'
  function namePausedRows(key: string) {
    if (naming !== 'idle') {
      naming = 'again'
      return
    }
    naming = 'running'
    const cause = {
      code: PAUSED_CODE,
      message: pausedRowMessage(d.sender.pauseReason?.(key) ?? null),
      mailFromKey: key,
    }
    const name = async () => {
      let marked = await pausedMarks.mark(cause, pausedMarks.passing() ? 'pass' : 'new')
      // The pause's pass to its end at once, a bounded statement at a time, while it stands: a
      // claim may not come again before the pause ends (an idle worker claims only when woken).
      while (pausedMarks.passing() && pause.claimParam() !== undefined && !r.stopping.aborted)
        marked += await pausedMarks.mark(cause, 'pass')
      return marked
    }
    void name()
      .then((marked) => {
        if (marked > 0) log.debug('rows waiting for MAIL_FROM’s pause named', { marked })
      })
      .catch((err) => log.warn('could not name the rows MAIL_FROM’s pause holds', { err }))
      .finally(() => {
        const again = naming === 'again'
        naming = 'idle'
        if (again && pause.claimParam() !== undefined) namePausedRows(key)
      })
  }

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
    const run = deliverBatch(
      {
        dbName: d.dbName,
        db: d.db,
        sender: d.sender,
        gate,
        slots: d.slots,
        settle,
        start: lastChecks,
        clock: d.clock,
        log,
        mailFrom: d.mailFrom,
        ...(d.allowedSenders && { allowedSenders: d.allowedSenders }),
        backoff: { baseMs: cfg.retryBaseSeconds * 1000, maxMs: cfg.retryMaxSeconds * 1000 },
        lookup: d.lookup,
        ...(d.lookupGraceSeconds !== undefined && { lookupGraceSeconds: d.lookupGraceSeconds }),
        ...(d.sendTimeoutMs !== undefined && { sendTimeoutMs: d.sendTimeoutMs }),
        ambiguousPolicy: d.ambiguousPolicy,
        ...(d.onEvent ? { onEvent: d.onEvent } : {}),
        ...(d.rng ? { rng: d.rng } : {}),
        deadlines,
        stopping: r.stopping,
        abort: r.abort,
        handedOver: (lease) => {
          if (unsent.delete(lease)) r.roomMade()
        },
        done: (lease, sent) => {
          if (pause.done(lease, sent === true) && pause.key !== null)
            void probeAnswered(d.db, { mailbox: pause.key, id: lease.id }).catch((err) =>
              log.warn('could not record MAIL_FROM’s probe answered', { err }),
            )
          if (!release(lease)) return
          r.roomMade()
        },
        onRetry: due.arm,
        onMailboxPaused: pause.mailboxPaused,
      },
      leases,
    ).catch((error) => {
      // deliverBatch handles rows itself; reaching here is a bug: leases expire and get reclaimed.
      // Stop heartbeating them (or they never expire).
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
  return claimAndDeliver
}
