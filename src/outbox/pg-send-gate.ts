// SendGate coordinated through Postgres, so the limits hold across every worker and machine.
import { pauseLeftMs } from './endless-pause.ts'
import { keptTurnWait, throttleHoldsMs } from './kept-turn-wait.ts'
import { reservePacing, takePacing } from './mailbox-pacing.ts'
import { pauseMailbox } from './mailbox-pause.ts'
import { owedGiveBack, owedLookupGiveBack } from './owed-give-back.ts'
import { noteRateAtStart } from './pacing-rate-at-start.ts'
import type { PgSendGateOptions } from './pg-send-gate-options.ts'
import { type MailboxPaused, mailboxKey, type SendGate } from './send-gate.ts'
import { createSharedPauseReads } from './shared-pause-reads.ts'
import { createSlotKeeper } from './slot-keeper.ts'

/**
 * A row waits out a pause this long at most (or one pacing interval, if longer) while it holds one
 * of its worker's places to send; past it the row goes back until the pause ends, so a mailbox
 * paused for minutes (a spent sending quota: 15) does not stop the worker's other mailboxes. Pacing
 * alone never makes a row wait longer than one interval: a row of a mailbox that already has one
 * waiting goes back to a reserved turn instead.
 */
const PAUSE_HOLD_MS = 5_000

export function createPgSendGate(o: PgSendGateOptions): SendGate {
  const intervalMs = o.ratePerMinute > 0 ? 60_000 / o.ratePerMinute : 0
  // The interval every worker paces by, as this worker last read it: the newest worker's
  // (pacing-rate.ts), its own from its start until a newer worker's rate is read (takePacing, a
  // reservation, the pause read, or the last check's answer: pacingInForce). 0: no pacing, the
  // pause read in the last check (pauseKey); a worker started with 0 paces by a newer worker's rate.
  let inForceMs = intervalMs
  function readInForce(ms: number) {
    if (ms === inForceMs) return
    inForceMs = ms
    o.log.info('pacing by the MAILBOX_RATE_PER_MINUTE the newest worker started with', {
      ratePerMinute: ms > 0 ? Math.round(60_000 / ms) : 0,
      ownRatePerMinute: o.ratePerMinute,
    })
  }
  const key = mailboxKey
  const slots = createSlotKeeper({
    db: o.db,
    clock: o.clock,
    log: o.log,
    holder: o.holder,
    max: o.maxConcurrency,
    ttlMs: o.slotTtlMs,
    maxWaitMs: o.maxWaitMs ?? 250,
    reuseMs: o.reuseMs ?? Math.min(500, o.slotTtlMs / 4),
    parkMs: o.parkMs ?? 50,
    lockNote: o.lockNote,
  })

  const pausedFor = createSharedPauseReads(o.db)

  // This worker's rows waiting in place for a mailbox's pacing, by mailbox key.
  const pacedWaiting = new Map<string, number>()

  async function waitForPacing(
    mailbox: string,
    signal: AbortSignal,
    readPause: boolean,
    rowId: string | undefined,
  ): Promise<false | 'check' | { turn: string } | MailboxPaused> {
    // Without pacing in force the last check before the send reads the pause (checkPause), in its
    // statement.
    if (inForceMs === 0 && !readPause) return !signal.aborted && 'check'
    const k = key(mailbox)
    if (inForceMs > 0 && pacedWaiting.has(k)) {
      // One row per mailbox waits in place for its turn. The others of a backlog would fill every
      // place to send, each for a turn intervals away, and hold up every other mailbox: such a
      // row goes back once, due at a turn reserved for it (reservePacing), instead of asking
      // again every interval. Not while the mailbox's probe is owed (reservePacing says so): the
      // row goes back for it, or it would be claimed for its turn only to go back then.
      const wait = await reservePacing(o.db, {
        mailbox: k,
        intervalMs,
        ...(rowId !== undefined && { rowId }),
      })
      if (typeof wait === 'object' && wait !== null && rowId !== undefined)
        return signal.aborted
          ? false
          : owedGiveBack(o.db, k, rowId, wait.waitMs, { refused: wait.refused === true })
      if (typeof wait === 'number')
        return signal.aborted ? false : { pausedForMs: wait, reserved: true }
      // No pacing in force (the newest worker's rate is 0): no turn to wait for, none reserved.
      readInForce(0)
      if (!readPause) return !signal.aborted && 'check'
    }
    pacedWaiting.set(k, (pacedWaiting.get(k) ?? 0) + 1)
    try {
      while (!signal.aborted) {
        // With no rate in force a throttle's pause still holds, for every worker. Paced, a turn is
        // one interval of the newest worker's rate (pacing-rate.ts) away at most, which may be
        // longer than this worker's.
        const unpaced = inForceMs === 0
        // owed: the mailbox's probe is owed and this row is not it (another worker's MAIL_FROM,
        // paused, named by this row): it goes back, to be sent after the probe's answer.
        const {
          waitMs: wait,
          intervalMs: paced,
          owed,
          turn,
          refused,
        } = unpaced
          ? await pausedFor(k).then((x) => ({
              ...x,
              // A throttle within a pacing turn holds too, as the last check reads it (start-send.ts).
              waitMs: pauseLeftMs(throttleHoldsMs(x)),
              owed: rowId !== undefined && x.owedProbe !== undefined && x.owedProbe !== rowId,
              turn: undefined,
            }))
          : await takePacing(o.db, {
              mailbox: k,
              intervalMs,
              ...(rowId !== undefined && { rowId }),
            }).then((x) => ({ ...x, owed: x.probeOwed === true }))
        readInForce(paced)
        // A newer worker's rate is in force: the send takes a turn under it first.
        if (unpaced && paced > 0) continue
        if (owed && rowId !== undefined)
          return owedGiveBack(o.db, k, rowId, wait, { refused: refused === true })
        // Read unpaced, the pause is read again in the last check, as one committed since counts.
        // Taken: the turn, for the row to keep through a wait without its permit (turnTaken).
        if (wait === 0) return unpaced ? 'check' : { turn: turn ?? '' }
        // The pause's cause goes with the row, which says it (a refusal is no throttle).
        if (wait > Math.max(paced, PAUSE_HOLD_MS))
          return refused === true ? { pausedForMs: wait, refused } : { pausedForMs: wait }
        await o.clock.sleep(Math.max(5, Math.min(wait, 5_000)), signal)
      }
      return false
    } finally {
      const n = (pacedWaiting.get(k) ?? 1) - 1
      if (n > 0) pacedWaiting.set(k, n)
      else pacedWaiting.delete(k)
    }
  }

  return {
    open: false,
    pausedBeyondMs: Math.max(intervalMs, PAUSE_HOLD_MS),
    async acquire(mailbox, signal, readPause = false, rowId, turnKept) {
      // Pace first: holding a slot while waiting for one mailbox would starve the others.
      const kept =
        turnKept === undefined
          ? 'retake'
          : await keptTurnWait({ ...o, read: pausedFor }, key(mailbox), turnKept, rowId, signal, {
              inForceMs,
              holdMs: Math.max(inForceMs, PAUSE_HOLD_MS),
            })
      const paced =
        kept === 'retake' ? await waitForPacing(mailbox, signal, readPause, rowId) : kept
      if (paced === false) return null
      if (typeof paced === 'object' && 'pausedForMs' in paced) return paced
      const permit = await slots.acquire(signal)
      if (!permit) return null
      if (paced === 'check') return { release: permit.release, checkPause: key(mailbox) }
      const turnTaken = paced === true ? turnKept : paced.turn
      return turnTaken === undefined ? permit : { release: permit.release, turnTaken }
    },
    pacingInForce: readInForce,
    async start() {
      await noteRateAtStart(o.db, o.log, {
        intervalMs,
        ratePerMinute: o.ratePerMinute,
        holder: o.holder,
      })
      readInForce(intervalMs)
    },
    async heldFor(mailbox, rowId) {
      // A pacing turn is the mailbox's sends' to take, not a lookup's: only a throttle holds it.
      const k = key(mailbox)
      const read = await pausedFor(k)
      if (read.owedProbe !== undefined && read.owedProbe !== rowId) {
        return owedLookupGiveBack(o.db, k, rowId, read.waitMs, { refused: read.refused === true })
      }
      const heldMs = throttleHoldsMs(read)
      if (heldMs === 0) return null
      return read.refused === true
        ? { pausedForMs: heldMs, refused: true }
        : { pausedForMs: heldMs }
    },
    async pause(mailbox, ms, refused) {
      await pauseMailbox(o.db, {
        mailbox: key(mailbox),
        ms,
        cause: refused ? 'refused' : 'throttle',
      })
      const pauseMs = Math.round(ms)
      if (refused) {
        o.log.info('mailbox paused: Graph refuses it', {
          pauseMs,
          code: refused.code,
          httpStatus: refused.httpStatus,
        })
      } else o.log.info('mailbox paused after a provider throttle', { pauseMs })
    },
    stopBegan: () => slots.stopBegan(),
    close: () => slots.close(),
  }
}
