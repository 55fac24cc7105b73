// Delivery of a claimed batch: render, resolve crash ambiguity, last check, send, settle. Never throws per row.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { retryDelayMs } from './backoff.ts'
import type { Lease } from './claim.ts'
import type { EngineEventHandler, SettleOutcome } from './events.ts'
import { RenderError, renderLease } from './render.ts'
import type { SendGate } from './send-gate.ts'
import type { OutboundMail, Sender, SendOutcome } from './sender.ts'
import type { Settlement } from './settle.ts'
import type { SettleQueue } from './settle-queue.ts'
import type { Slots } from './slots.ts'
import { startSends } from './start-send.ts'
import { loadTemplates } from './templates.ts'

export type MailboxLookup = (
  mail: OutboundMail,
  signal: AbortSignal,
) => Promise<'found' | 'not_found' | 'unavailable' | 'error'>

export interface DeliveryDeps {
  dbName: string
  db: Kysely<Database>
  sender: Sender
  gate: SendGate
  /** Process-wide sends in flight: taken right before a send, given back right after it. */
  slots: Slots
  settle: SettleQueue
  clock: Clock
  log: Logger
  mailFrom: string | null
  backoff: { baseMs: number; maxMs: number }
  /** Resolves crash ambiguity by looking in the mailbox; absent when not permitted. */
  lookup: MailboxLookup | null
  ambiguousPolicy: 'resend' | 'hold'
  onEvent?: EngineEventHandler
  rng?: () => number
  /** Soft stop: rows not yet started are released, not sent. */
  stopping: AbortSignal
  /** Hard stop: in-flight sends are aborted. */
  abort: AbortSignal
  /** Called once per lease when it is finished with (settled or lost). */
  done: (lease: Lease) => void
  /** A row was rescheduled `delayMs` from now: the drainer arms its timer for it. */
  onRetry?: (delayMs: number) => void
}

// Outcomes after which the provider may or may not have the message.
const AMBIGUOUS_CODES = new Set(['timeout', 'network', 'aborted'])

export async function deliverBatch(d: DeliveryDeps, leases: readonly Lease[]): Promise<void> {
  const finish = async (lease: Lease, s: Settlement, extra: Partial<SendExtra> = {}) => {
    const row = await d.settle.push({
      id: lease.id,
      token: lease.token,
      settlement: s,
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
      const fields = {
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
      }
      // One line per state change: failures stand out, routine sends stay at debug.
      if (row.status === 'failed') d.log.warn('message failed', fields)
      else if (outcome === 'retry' || outcome === 'throttled')
        d.log.info('send will be retried', fields)
      else d.log.debug('settled', fields)
    } else {
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

  const ready: { lease: Lease; mail: OutboundMail }[] = []
  let templates: Awaited<ReturnType<typeof loadTemplates>> = new Map()
  let templatesFailed = false
  try {
    templates = await loadTemplates(
      d.db,
      leases.flatMap((l) => (l.template ? [l.template] : [])),
    )
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

  const sendable: { lease: Lease; mail: OutboundMail }[] = []
  for (const r of ready) {
    if (!r.lease.ambiguous) {
      sendable.push(r)
      continue
    }
    const verdict = d.lookup
      ? await d.lookup(r.mail, d.abort).catch(() => 'error' as const)
      : 'unavailable'
    if (verdict === 'error') {
      // Ask the mailbox again later rather than guess; the attempt is not counted.
      const delayMs = retryDelayMs(r.lease.attempt, d.backoff, d.rng)
      settling.push(
        finish(r.lease, {
          kind: 'retry',
          code: 'lookup_failed',
          message: 'could not look the interrupted send up in the mailbox; will ask again',
          delayMs,
          throttled: true,
          ambiguous: true,
        }),
      )
    } else if (verdict === 'found') {
      d.log.info('found in the mailbox after an interrupted send; not sending again', {
        db: d.dbName,
        outboxId: r.lease.id,
      })
      settling.push(finish(r.lease, { kind: 'sent' }))
    } else if (verdict === 'unavailable' && d.ambiguousPolicy === 'hold') {
      settling.push(
        finish(r.lease, {
          kind: 'failed',
          code: 'ambiguous_send',
          message:
            'a previous send was interrupted and may have been delivered; held for review (retry it to send)',
        }),
      )
    } else sendable.push(r)
  }

  if (d.gate.open) {
    // The claim already recorded most sends as started; only the rest need the last check.
    const unstarted = sendable.filter((r) => !r.lease.started)
    const started = [
      ...sendable.filter((r) => r.lease.started),
      ...(await startOrRelease(d, unstarted, finish)),
    ]
    await Promise.all([...settling, ...started.map((r) => sendInSlot(d, r, finish, null, false))])
    return
  }
  await Promise.all([
    ...settling,
    ...sendable.map(async (r) => {
      const mailbox = r.mail.from.address
      let permit: Awaited<ReturnType<SendGate['acquire']>>
      try {
        permit = await d.gate.acquire(mailbox, d.stopping)
      } catch (err) {
        // The limits live in the database: unreachable now, so give the row back untouched.
        d.log.warn('could not take a send permit; releasing the row', { db: d.dbName, err })
        permit = null
      }
      if (!permit) return finish(r.lease, { kind: 'released' })
      try {
        await sendInSlot(d, r, finish, mailbox, true)
      } finally {
        await permit.release()
      }
    }),
  ])
}

/** Takes a process slot, (optionally) makes the last check, sends, gives the slot back, then settles. */
async function sendInSlot(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  mailbox: string | null,
  check: boolean,
): Promise<void> {
  if (!(await d.slots.acquire(d.stopping))) return finish(r.lease, { kind: 'released' })
  let result: { settlement: Settlement; extra: Partial<SendExtra> } | null = null
  try {
    const go = check ? (await startOrRelease(d, [r], finish)).length > 0 : true
    if (go) result = await sendOne(d, r, mailbox)
  } finally {
    d.slots.release()
  }
  if (result) await finish(r.lease, result.settlement, result.extra)
}

interface SendExtra {
  startedAt: Date
  httpStatus: number | undefined
  requestId: string | undefined
  durationMs: number
}
type Finish = (lease: Lease, s: Settlement, extra?: Partial<SendExtra>) => Promise<void>
type Ready = { lease: Lease; mail: OutboundMail }

async function startOrRelease(d: DeliveryDeps, rows: Ready[], finish: Finish): Promise<Ready[]> {
  if (rows.length === 0) return []
  if (d.stopping.aborted) {
    await Promise.all(rows.map((r) => finish(r.lease, { kind: 'released' })))
    return []
  }
  let result: Awaited<ReturnType<typeof startSends>>
  try {
    result = await startSends(
      d.db,
      rows.map((r) => r.lease),
    )
  } catch (err) {
    d.log.warn('could not start sends; releasing', { db: d.dbName, err })
    await Promise.all(rows.map((r) => finish(r.lease, { kind: 'released' })))
    return []
  }
  const started: Ready[] = []
  const waits: Promise<void>[] = []
  for (const r of rows) {
    if (result.started.has(r.lease.id)) started.push(r)
    else if (result.cancelled.has(r.lease.id)) waits.push(finish(r.lease, { kind: 'cancelled' }))
    else if (result.expired.has(r.lease.id)) waits.push(finish(r.lease, { kind: 'expired' }))
    else {
      d.onEvent?.({ type: 'lease_lost', db: d.dbName, id: r.lease.id, during: 'start' })
      d.log.warn('lease lost before the send; not sending', { db: d.dbName, outboxId: r.lease.id })
      d.done(r.lease)
    }
  }
  await Promise.all(waits)
  return started
}

async function sendOne(
  d: DeliveryDeps,
  r: Ready,
  mailbox: string | null,
): Promise<{ settlement: Settlement; extra: Partial<SendExtra> }> {
  const startedAt = new Date(d.clock.now())
  const t0 = performance.now()
  let outcome: SendOutcome
  try {
    outcome = await d.sender.send(r.mail, d.abort)
  } catch (err) {
    // A transport must not throw; if one does, treat it as a transient failure of unknown effect.
    d.log.error('transport threw', { db: d.dbName, outboxId: r.lease.id, err })
    outcome = { kind: 'retry', code: d.abort.aborted ? 'aborted' : 'network', message: String(err) }
  }
  const extra = {
    startedAt,
    durationMs: performance.now() - t0,
    httpStatus: outcome.httpStatus,
    requestId: outcome.requestId,
  }
  if (outcome.kind === 'sent') return { settlement: { kind: 'sent' }, extra }
  if (outcome.kind === 'reject') {
    return { settlement: { kind: 'failed', code: outcome.code, message: outcome.message }, extra }
  }
  const throttled = outcome.throttled === true
  if (throttled && mailbox && outcome.afterMs) {
    await d.gate.pause(mailbox, outcome.afterMs).catch(() => {})
  }
  const delayMs = outcome.afterMs ?? retryDelayMs(r.lease.attempt, d.backoff, d.rng)
  const settlement: Settlement = {
    kind: 'retry',
    code: outcome.code,
    message: outcome.message,
    delayMs,
    throttled,
    ambiguous: AMBIGUOUS_CODES.has(outcome.code) || d.abort.aborted,
  }
  return { settlement, extra }
}
