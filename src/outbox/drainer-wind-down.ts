// A drainer's wind-down once its loop ended: sends in flight within the grace, their outcomes recorded, its registry entry left.
import type { Logger } from '../log.ts'
import { deregisterWorker } from './deregister-worker.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import type { HeldLeases } from './held-leases.ts'
import type { LastSend } from './last-send.ts'
import type { createLeaseUpkeep } from './lease-upkeep.ts'
import { mailFromAddress, noteSenderMailbox } from './past-senders.ts'
import type { SettleQueue } from './settle-queue.ts'
import { finishWithinGrace } from './shutdown-grace.ts'

export async function windDown(w: {
  d: DrainerDeps
  log: Logger
  /** The loop, ended; null when the drainer never started. */
  loop: Promise<void> | null
  graceMs: number
  /** When the stop began (monotonicNow): the grace counts from it. */
  startedAt: number
  deliveries: ReadonlySet<Promise<void>>
  abort: AbortController
  held: HeldLeases['held']
  settle: SettleQueue
  upkeep: Pick<ReturnType<typeof createLeaseUpkeep>, 'stopTimers'>
  /** Its newest send, noted by its stop when no beat has (sql/0204). */
  lastSend: Pick<LastSend, 'unnoted'>
}): Promise<void> {
  const { d, log, loop, graceMs, startedAt, deliveries, abort, held, settle, upkeep } = w
  await finishWithinGrace({
    deliveries,
    graceMs,
    startedAt,
    clock: d.clock,
    abort,
    log,
    inFlight: () => held.size,
    recordBy: settle.giveUpBy,
  })
  await settle.idle()
  await d.gate.close?.()
  // A reclaim still running would register the worker again after its deregistration.
  await upkeep.stopTimers()
  // MAIL_FROM noted again as the worker's last act (past-senders.ts); like the deregistration,
  // skipped with the database away: its entry then keeps the time of the worker's start.
  const mailFrom = loop === null ? null : mailFromAddress(d.mailFrom)
  await Promise.all([
    deregisterWorker(d.db, d.worker.id, w.lastSend.unnoted()).catch(() => {}),
    mailFrom === null ? null : noteSenderMailbox(d.db, mailFrom).catch(() => {}),
  ])
}
