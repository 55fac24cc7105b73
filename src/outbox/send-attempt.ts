// One send attempt of a claimed row, once any interrupted earlier send is resolved: slot, last check, then the send (send-verdict.ts).

import { monotonicNow } from '../clock.ts'
import type { Lease } from './claim.ts'
import type { DeliveryDeps } from './deliver.ts'
import type { PauseLeftMs } from './endless-pause.ts'
import type { PermitInHand } from './permit-in-hand.ts'
import { sendOne } from './send-verdict.ts'
import type { OutboundMail } from './sender.ts'
import type { Settlement } from './settle-item.ts'
import { slotOnceConfirmed } from './slot-once-confirmed.ts'
import type { StartResult } from './start-send.ts'
import { giveUpUnsent } from './unsent-give-up.ts'

interface SlotSend {
  /** Make the last check (startSends) in the slot: false only for a row the claim recorded as started. */
  lastCheck: boolean
  /** The mailbox a provider throttle of this send pauses for every worker (shared limits only). */
  pauseOnThrottle: string | null
  /**
   * A gated send's provider permit: given back once the provider request is over (before the
   * settlement); the mailbox key whose pause the last check reads, when the gate left it to it.
   */
  permit?: PermitInHand
}

/**
 * Takes a process slot, makes the last check if asked, sends, gives the slot back (and the
 * permit), then settles: a settlement waiting for its batch statement holds neither.
 */
export async function sendInSlot(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  { lastCheck, pauseOnThrottle, permit }: SlotSend,
): Promise<void> {
  // A free slot is taken without an await (a hop on the way to the send).
  const slot = (!d.stopping.aborted && d.slots.tryAcquire()) || (await d.slots.acquire(d.stopping))
  if (!slot) return finish(r.lease, { kind: 'released' })
  // The row may have waited (for a permit, a slot) past its lease: then it is not sent. For a row
  // the claim recorded as started this is the only check; for the others it spares a start
  // statement that would refuse the ended lease anyway. Short of the margin only until a
  // heartbeat still on its way answers (a slow database), it waits for that answer.
  if (d.deadlines && !d.deadlines.holds(r.lease)) {
    d.slots.release()
    const waited = await slotOnceConfirmed(d, r, finish, permit)
    if (waited !== true) {
      permit?.release()
      return waited()
    }
  }
  let result: { settlement: Settlement; extra: Partial<SendExtra> } | null = null
  // A row the check turned away is settled once the slot is given back: its settlement may wait
  // (a lock on the row, its database away: without bound), and other databases' sends with it.
  let turnedAway: (() => Promise<void>) | null = null
  let holding = true
  try {
    let checking = true
    // The check's database is slow to answer (up to statement_timeout, 30 s): the slot is every
    // database's, so it is given back meanwhile (the start queue says when: LAST_CHECK_IN_SLOT_MS),
    // and taken again for a send the check allows.
    const giveSlotBack = () => {
      if (!checking || !holding) return
      d.slots.release()
      holding = false
    }
    // Before the check is asked: send_started_at, which it records, is no earlier.
    const askedAt = monotonicNow(d.clock)
    let checked: Checked = lastCheck
      ? await checkBeforeSend(d, r, finish, giveSlotBack, permit?.checkPause)
      : 'go'
    checking = false
    if (checked === 'go' && !holding) {
      holding = (!d.stopping.aborted && d.slots.tryAcquire()) || (await d.slots.acquire(d.stopping))
      // Stopping: recorded as started, not sent; the release clears that record (or keeps an
      // interrupted earlier send's mark), uncounted.
      if (!holding) checked = () => finish(r.lease, { kind: 'released' })
    }
    // The send's deadline runs from before the check: one answered (or its slot taken again)
    // past it has no time left to send in, and is given back unsent, its start undone.
    if (checked === 'go' && lastCheck && pastDeadline(d, askedAt))
      checked = pastSendDeadline(d, r, finish)
    // The margin is for the send: a last check that took long (its statement waited for the one
    // before it, or for a struggling database) may have used it up, unless a heartbeat's answer
    // still on its way gives it back.
    if (checked === 'go' && lastCheck && d.deadlines && !d.deadlines.holds(r.lease)) {
      // Given back before the wait, and so marked: a wait that throws leaves nothing to give back.
      if (holding) d.slots.release()
      holding = false
      const waited = await slotOnceConfirmed(d, r, finish, permit)
      holding = waited === true
      if (waited !== true) checked = waited
      else if (pastDeadline(d, askedAt)) checked = pastSendDeadline(d, r, finish)
    }
    if (checked !== 'go') turnedAway = checked
    else result = await sendOne(d, r, pauseOnThrottle, lastCheck ? askedAt : undefined)
  } finally {
    if (holding) d.slots.release()
    permit?.release()
  }
  if (turnedAway) return turnedAway()
  if (!result) return
  // Given back due at once (Graph: the token a 401 sent it for is slow), its settlement wakes a
  // worker with a token to take it (lease-outcome.ts).
  await finish(r.lease, result.settlement, result.extra)
}

/** A row whose last check answered (or whose slot came back) past its send's deadline. */
function pastSendDeadline(d: DeliveryDeps, r: Ready, finish: Finish): () => Promise<void> {
  return () => {
    d.log.warn('the last check answered past the send deadline; given back unsent', {
      db: d.dbName,
      outboxId: r.lease.id,
    })
    return finish(r.lease, { kind: 'released' })
  }
}

/** The send's request timeout has run out since `askedAt` (before its last check). */
function pastDeadline(d: DeliveryDeps, askedAt: number): boolean {
  return d.sendTimeoutMs !== undefined && monotonicNow(d.clock) - askedAt >= d.sendTimeoutMs
}

export interface SendExtra {
  startedAt: Date
  httpStatus: number | undefined
  requestId: string | undefined
  durationMs: number
}
export type Finish = (lease: Lease, s: Settlement, extra?: Partial<SendExtra>) => Promise<void>
/**
 * `unverified`: resent without knowing whether the interrupted earlier send delivered it (no
 * lookup, policy resend): a failure of this send leaves that question open.
 */
export type Ready = {
  lease: Lease
  mail: OutboundMail
  unverified?: boolean
  /** The last check found the row's mailbox paused for this long: not started, ask the gate again. */
  pausedForMs?: PauseLeftMs | undefined
}

/**
 * How long a last check keeps its send slot while its statement runs (the drainer's start queue
 * times it): a healthy database answers in milliseconds; past this the slot is given back until the
 * answer comes, so a slow database holds up no other database's sends for longer.
 */
export const LAST_CHECK_IN_SLOT_MS = 1_000

type Checked = 'go' | (() => Promise<void>)

/**
 * The last check of one row: 'go' when its send is recorded as started, else what becomes of it,
 * to be done once its slot is given back (nothing for a row whose mailbox stands paused: the gate
 * asks again).
 */
async function checkBeforeSend(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  slow: () => void,
  checkPause: string | undefined,
): Promise<Checked> {
  const { lease } = r
  if (d.stopping.aborted) return () => finish(lease, { kind: 'released' })
  let result: StartResult
  // With a gate that left the pause to this check, the row names its mailbox.
  try {
    result = await d.start(
      checkPause !== undefined
        ? [{ id: lease.id, token: lease.token, mailbox: checkPause }]
        : [lease],
      slow,
    )
  } catch (err) {
    d.log.warn('could not start sends; releasing', { db: d.dbName, err })
    return () => finish(lease, { kind: 'released' })
  }
  if (result.started.has(lease.id)) return 'go'
  if (result.cancelled.has(lease.id)) return () => finish(lease, { kind: 'cancelled' })
  if (result.expired.has(lease.id)) return () => finish(lease, { kind: 'expired' })
  // Another transaction holds the row (an application's open UPDATE of it): given back unsent and
  // uncounted, recorded once that lock goes; a claim takes it again after.
  if (result.busy.has(lease.id)) return () => finish(lease, { kind: 'released' })
  // A newer worker's rate in force: the gate paces by it, and the row asks it for a turn.
  if (result.pacingMs !== null) d.gate.pacingInForce?.(result.pacingMs)
  if (result.paused.has(lease.id)) {
    r.pausedForMs = result.paused.get(lease.id)
    return async () => {}
  }
  // Refused: another claim took the row, or its lease ended before the check and no reclaim
  // took it yet (mailer.start_sends refuses an ended lease); the latter goes back uncounted.
  return () => giveUpUnsent(d, r, finish, 'refused')
}
