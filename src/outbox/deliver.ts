// Delivery of a claimed batch: render, resolve crash ambiguity, last check, send, settle. Never throws per row.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { Lease } from './claim.ts'
import type { EngineEventHandler, SettleOutcome } from './events.ts'
import { sendThroughGate } from './gated-send.ts'
import { resolveAmbiguity } from './interrupted-send.ts'
import type { LeaseDeadlines } from './lease-deadlines.ts'
import type { MailboxLookup } from './mailbox-lookup.ts'
import { renderLease } from './render.ts'
import { RenderError } from './render-error.ts'
import { type Finish, type Ready, type SendExtra, sendInSlot } from './send-attempt.ts'
import type { SendGate } from './send-gate.ts'
import type { Sender } from './sender.ts'
import { PAUSED_CODE, type Settlement, TOKEN_WAIT_CODE } from './settle-item.ts'
import type { SettleQueue } from './settle-queue.ts'
import type { Slots } from './slots.ts'
import type { StartQueue } from './start-queue.ts'
import { loadTemplates } from './templates.ts'

export interface DeliveryDeps {
  dbName: string
  db: Kysely<Database>
  sender: Sender
  gate: SendGate
  /** Process-wide sends in flight: taken right before a send, given back right after it. */
  slots: Slots
  settle: SettleQueue
  /** The last check before a send (startSends), shared with checks asked for at the same time. */
  start: StartQueue
  clock: Clock
  log: Logger
  mailFrom: string | null
  backoff: { baseMs: number; maxMs: number }
  /** Resolves crash ambiguity by looking in the mailbox; absent when not permitted. */
  lookup: MailboxLookup | null
  /** How long after an interrupted send "not found" still means "look again" (LOOKUP_GRACE_SECONDS). */
  lookupGraceSeconds?: number
  ambiguousPolicy: 'resend' | 'hold'
  onEvent?: EngineEventHandler
  rng?: () => number
  /** Until when each lease is surely held: rows the claim started are not sent past it. */
  deadlines?: LeaseDeadlines
  /** Soft stop: rows not yet started are released, not sent. */
  stopping: AbortSignal
  /** Hard stop: in-flight sends are aborted. */
  abort: AbortSignal
  /** Called when a lease's outcome is known and goes to be recorded: it needs no send any more. */
  handedOver?: (lease: Lease) => void
  /** Called once per lease when it is finished with (settled or lost). */
  done: (lease: Lease) => void
  /** A row went back unsent because `mailbox` stands paused (not for a pacing turn). */
  onMailboxPaused?: (mailbox: string) => void
  /** A row was rescheduled `delayMs` from now: the drainer arms its timer for it. */
  onRetry?: (delayMs: number) => void
}

// The line logged for a settled row, by level: failures stand out, routine sends stay at debug.
const SETTLED_MESSAGE = {
  warn: 'message failed',
  info: 'send will be retried',
  debug: 'settled',
} as const

/**
 * A row given back because the app got no provider token says nothing of the row (no request of
 * its own was made) and repeats the transport's own line ('graph token request failed', once per
 * backoff): at info it was one line per waiting row and backoff for as long as Entra was down.
 */
const TOKEN_WAIT = new RegExp(TOKEN_WAIT_CODE)
/**
 * Nor does a row given back unsent because its mailbox stands paused: the send that met the
 * throttle or refusal logged it (and a refused MAIL_FROM its one error line). At info it was one
 * line per waiting row and pause for as long as the mailbox stayed refused (20 rows, 3 pauses: 60).
 */
const quietWait = (code: string | null) =>
  code !== null && (code === PAUSED_CODE || TOKEN_WAIT.test(code))

export async function deliverBatch(d: DeliveryDeps, leases: readonly Lease[]): Promise<void> {
  const finish = async (lease: Lease, s: Settlement, extra: Partial<SendExtra> = {}) => {
    d.handedOver?.(lease)
    const row = await d.settle.push({
      id: lease.id,
      token: lease.token,
      settlement: s,
      ambiguous: lease.ambiguous,
      startedAt: extra.startedAt ?? null,
      httpStatus: extra.httpStatus,
      requestId: extra.requestId,
    })
    if (row) {
      if (s.kind === 'retry' && row.status === 'pending') d.onRetry?.(s.delayMs)
      // A released row is due again now (unless we are stopping): claim it again promptly.
      if (s.kind === 'released' && !d.stopping.aborted) d.onRetry?.(0)
      // What the attempt history recorded: sent, retry, throttled, failed, expired, cancelled, released.
      const outcome = row.outcome as SettleOutcome | 'released'
      if (outcome !== 'released') {
        d.onEvent?.({
          type: 'settled',
          db: d.dbName,
          id: lease.id,
          outcome,
          ...(row.code ? { code: row.code } : {}),
          ...(extra.durationMs !== undefined ? { durationMs: extra.durationMs } : {}),
        })
      }
      // One line per state change.
      const level =
        row.status === 'failed'
          ? 'warn'
          : outcome === 'retry' || (outcome === 'throttled' && !quietWait(row.code))
            ? 'info'
            : 'debug'
      if (d.log.enabled(level)) {
        d.log[level](SETTLED_MESSAGE[level], {
          db: d.dbName,
          outboxId: lease.id,
          tenant: lease.tenant,
          attempt: lease.attempt,
          correlationId: lease.correlationId,
          outcome,
          status: row.status,
          code: row.code,
          httpStatus: extra.httpStatus,
          requestId: extra.requestId,
        })
      }
    } else {
      // A lease a heartbeat found lost was counted then: its row may still settle after (a send
      // under way, a mailbox pause, a lookup), and must not count it again.
      if (d.deadlines?.isLost(lease) !== true)
        d.onEvent?.({ type: 'lease_lost', db: d.dbName, id: lease.id, during: 'settle' })
      d.log.warn('lease lost before the outcome was recorded', {
        db: d.dbName,
        outboxId: lease.id,
        tenant: lease.tenant,
        attempt: lease.attempt,
        outcome: s.kind,
      })
    }
    d.done(lease)
  }

  const ready: Ready[] = []
  let templates: Awaited<ReturnType<typeof loadTemplates>> = new Map()
  let templatesFailed = false
  const templateNames = leases.flatMap((l) => (l.template ? [l.template] : []))
  try {
    // No await without templated rows: each is a hop on the way to the send.
    if (templateNames.length > 0) templates = await loadTemplates(d.db, templateNames)
  } catch (err) {
    // Without templates nothing templated can render; release those rows to try again shortly.
    templatesFailed = true
    d.log.warn('could not load templates', { db: d.dbName, err })
  }
  const settling: Promise<void>[] = []
  for (const lease of leases) {
    if (lease.expired) settling.push(finish(lease, { kind: 'expired' }))
    else if (lease.cancelRequested) settling.push(finish(lease, { kind: 'cancelled' }))
    else if (lease.template && templatesFailed) settling.push(finish(lease, { kind: 'released' }))
    else {
      try {
        ready.push({ lease, mail: renderLease(lease, templates, d.mailFrom) })
      } catch (e) {
        const code = e instanceof RenderError ? e.code : 'template_error'
        const message = e instanceof Error ? e.message : String(e)
        settling.push(finish(lease, { kind: 'failed', code, message }))
      }
    }
  }

  if (d.gate.open) {
    // The claim already recorded most sends as started; the rest (an interrupted send, an expiry)
    // get the last check once they hold their slot, right before the send: the local queue may
    // hold them for a while. (No await for rows with nothing to resolve.) A row the resolution
    // settles is settled alongside the sends, not before them: its settlement may wait (another
    // transaction holding the row locked) and the rest of the batch with it.
    const settleLater: Finish = async (lease, s, extra) => {
      settling.push(finish(lease, s, extra))
    }
    const sendable = ready.some((r) => r.lease.ambiguous)
      ? (
          await Promise.all(
            ready.map(async (r) =>
              r.lease.ambiguous && !(await resolveAmbiguity(d, r, settleLater)) ? null : r,
            ),
          )
        ).filter((r): r is Ready => r !== null)
      : ready
    await Promise.all([
      ...settling,
      ...sendable.map((r) =>
        sendInSlot(d, r, finish, { lastCheck: !r.lease.started, pauseOnThrottle: null }),
      ),
    ])
    return
  }
  await Promise.all([...settling, ...ready.map((r) => sendThroughGate(d, r, finish))])
}
