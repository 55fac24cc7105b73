// Delivery of a claimed batch: render, resolve crash ambiguity, last check, send, settle. Never throws per row.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database, TemplateRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { cancelledAsClaimed } from './cancelled-interrupted.ts'
import type { Lease } from './claim.ts'
import type { EngineEventHandler } from './events.ts'
import { resolveInterrupted } from './expired-interrupted.ts'
import { sendThroughGate } from './gated-send.ts'
import type { LeaseDeadlines } from './lease-deadlines.ts'
import { recordOutcome } from './lease-outcome.ts'
import type { MailboxLookup } from './mailbox-lookup.ts'
import { renderLease } from './render.ts'
import { afterInterruptedSend } from './render-error.ts'
import { renderFailure } from './render-failure.ts'
import { type Finish, type Ready, sendInSlot } from './send-attempt.ts'
import type { SendGate } from './send-gate.ts'
import type { Sender, TokenSlowKeep } from './sender.ts'
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
  /** MAIL_FROM_ALLOWED's keys: a row naming another sender fails sender_not_allowed; absent, any. */
  allowedSenders?: ReadonlySet<string> | null
  backoff: { baseMs: number; maxMs: number }
  /** Resolves crash ambiguity by looking in the mailbox; absent when not permitted. */
  lookup: MailboxLookup | null
  /** How long after an interrupted send "not found" still means "look again"; default LOOKUP_GRACE_SECONDS (lookup-grace.ts), a test's shorter. */
  lookupGraceSeconds?: number
  /** How long one send may take (Graph's request timeout): the lookup grace counts from its end. */
  sendTimeoutMs?: number
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
  /**
   * Called once per lease when it is finished with (settled or lost). `sent`: its send was asked of
   * the provider (whatever came of it); not for a row settled or given back unsent (cancelled,
   * expired, released, lost before its send).
   */
  done: (lease: Lease, sent?: boolean) => void
  /** A row went back unsent because `mailbox` stands paused (not for a pacing turn). */
  onMailboxPaused?: (mailbox: string) => void
  /** A row was rescheduled `delayMs` from now: the drainer arms its timer for it. */
  onRetry?: (delayMs: number) => void
  /**
   * A row's settlement left it due at once for another worker (no token here yet, a stop): the
   * others are woken. Called by recordOutcome alone, once the settlement has committed
   * (peer-wake.ts: dueAtOnceForOthers): no delivery path calls it.
   */
  givenBackForOthers?: () => void
  /**
   * A row's settlement released it while the worker runs, pending and due at once for its own loop
   * (onRetry(0)): counted, so that a stop before that loop's claim wakes the others for it
   * (own-releases.ts). Called by recordOutcome alone, once the settlement has committed.
   */
  releasedForSelf?: () => void
  /**
   * Asked before such a give-back: true once the slow token request has ended when no other live
   * worker could take the row, which then goes on here (lone-token-wait.ts); absent: given back.
   */
  keptForToken?: () => Promise<boolean>
  /** The same question in a send whose token Graph refused (401), its fresh one slow (sender.ts). */
  keptForTokenInSend?: TokenSlowKeep
}

// A batch without templated rows renders from none: one empty map for all of them.
const NO_TEMPLATES: ReadonlyMap<string, TemplateRow> = new Map()

export async function deliverBatch(d: DeliveryDeps, leases: readonly Lease[]): Promise<void> {
  const finish: Finish = (lease, s, extra) => recordOutcome(d, lease, s, extra)

  const ready: Ready[] = []
  let templates: ReadonlyMap<string, TemplateRow> = NO_TEMPLATES
  let templatesFailed = false
  // A loop, no map or array per row: this runs on every pickup's way to its send.
  const templateNames: string[] = []
  for (const l of leases) if (l.template) templateNames.push(l.template)
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
    // A row whose cancel was requested is never sent: cancelled here, or rendered to look its
    // interrupted earlier send up (cancelled-interrupted.ts). A recorded cancel wins over an
    // expiry where it settles (cancel-wins.ts), so it is judged first.
    const cancelled = cancelledAsClaimed(lease, Boolean(d.lookup))
    // An expired row with an interrupted earlier send is rendered to be looked up (never sent)
    // when lookups are on: found, it settles sent, and an operator knows the message went.
    if (cancelled) settling.push(finish(lease, cancelled))
    else if (lease.expired && !(lease.ambiguous && d.lookup))
      settling.push(finish(lease, { kind: 'expired' }))
    else if (lease.template && templatesFailed) settling.push(finish(lease, { kind: 'released' }))
    else {
      try {
        ready.push({
          lease,
          mail: renderLease(lease, templates, d.mailFrom, d.allowedSenders ?? null),
        })
      } catch (e) {
        // An interrupted earlier send stays unresolved (nothing to look it up by): its mark is
        // kept, so a retry once the row renders again looks it up before sending it again (past
        // its expiresAt, the row fails expired naming it: pastExpiry).
        settling.push(
          renderFailure(d, e, lease.id).then(({ code, message }) =>
            finish(lease, {
              kind: 'failed',
              code,
              message: lease.ambiguous ? afterInterruptedSend(message) : message,
              ambiguous: lease.ambiguous,
            }),
          ),
        )
      }
    }
  }

  if (d.gate.open) {
    // The claim already recorded most sends as started; the rest (an interrupted send, an expiry)
    // get the last check once they hold their slot, right before the send: the local queue may
    // hold them for a while. (No await for rows with nothing to resolve.) A row the resolution
    // settles is settled alongside the sends, not before them: its settlement may wait (another
    // transaction holding the row locked) and the rest of the batch with it.
    let sendable = ready
    if (anyAmbiguous(ready)) {
      const settleLater: Finish = async (lease, s, extra) => {
        settling.push(finish(lease, s, extra))
      }
      sendable = (
        await Promise.all(
          ready.map(async (r) =>
            r.lease.ambiguous && !(await resolveInterrupted(d, r, settleLater)) ? null : r,
          ),
        )
      ).filter((r): r is Ready => r !== null)
    }
    // Each send begun beside the settlements, in this turn: a loop, no spread copies or closure
    // on every pickup's way to its send (nothing adds to `settling` once its rows are resolved).
    for (const r of sendable)
      settling.push(
        sendInSlot(d, r, finish, { lastCheck: !r.lease.started, pauseOnThrottle: null }),
      )
    await Promise.all(settling)
    return
  }
  await Promise.all([...settling, ...ready.map((r) => sendThroughGate(d, r, finish))])
}

/** Whether a row of the batch has an interrupted earlier send to resolve first (a loop: every pickup asks). */
function anyAmbiguous(ready: readonly Ready[]): boolean {
  for (const r of ready) if (r.lease.ambiguous) return true
  return false
}
