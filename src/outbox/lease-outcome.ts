// A lease's outcome recorded: its settlement queued, then the engine event and the one log line of its state change.
import type { DeliveryDeps } from './deliver.ts'
import type { SettleOutcome } from './events.ts'
import { type Lease, lookupOnly } from './lease.ts'
import { dueAtOnceForOthers } from './peer-wake.ts'
import type { SendExtra } from './send-attempt.ts'
import {
  PAUSED_CODE,
  pastAttempts,
  pastExpiry,
  type Settlement,
  TOKEN_WAIT_CODE,
} from './settle-item.ts'

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

/**
 * Settles `lease` as what its delivery `met` (through the settle queue), then reports what the
 * history recorded: a retry arms the drainer's timer, a settled row is an engine event and a log
 * line at the level of its news, a row left due at once for another worker wakes the others
 * (peer-wake.ts), a lease lost meanwhile is counted once. The lease is done with
 * either way. A lease claimed past its row's expiresAt settles as pastExpiry has it, here, where
 * every delivery path settles: none has to remember it; so does one past its max_attempts (pastAttempts).
 */
export async function recordOutcome(
  d: DeliveryDeps,
  lease: Lease,
  met: Settlement,
  extra: Partial<SendExtra> = {},
): Promise<void> {
  const s = lease.expired ? pastExpiry(met) : lease.pastAttempts ? pastAttempts(met) : met
  d.handedOver?.(lease)
  const row = await d.settle.push({
    id: lease.id,
    token: lease.token,
    settlement: s,
    ambiguous: lease.ambiguous,
    ...(lookupOnly(lease) && { uncounted: true }),
    ...(lease.expired && { pastExpiry: true }),
    ...(lease.cancelRequested && { cancelRequested: true }),
    startedAt: extra.startedAt ?? null,
    httpStatus: extra.httpStatus,
    requestId: extra.requestId,
  })
  if (row) {
    if (s.kind === 'retry' && row.status === 'pending') d.onRetry?.(row.dueMs ?? s.delayMs)
    // A released row is due again now (unless we are stopping): claim it again promptly; should a
    // stop come first, it wakes the others for it (own-releases.ts).
    if (s.kind === 'released' && !d.stopping.aborted) {
      d.onRetry?.(0)
      if (row.status === 'pending') d.releasedForSelf?.()
    }
    // Due at once for another worker (a slow token request here, a stop): the others are woken,
    // once it has committed. Here, where every delivery path settles, so none has to remember it.
    if (dueAtOnceForOthers(s, row, d.stopping.aborted)) d.givenBackForOthers?.()
    // What the attempt history recorded: sent, retry, throttled, failed, expired, cancelled, released.
    const outcome = row.outcome as SettleOutcome | 'released'
    if (outcome !== 'released') {
      d.onEvent?.({
        type: 'settled',
        db: d.dbName,
        id: lease.id,
        outcome,
        ...(row.code ? { code: row.code } : {}),
        ...(outcome === 'throttled' &&
          s.kind === 'retry' &&
          s.mailboxRefused && { mailboxRefused: true }),
        ...(outcome === 'throttled' &&
          extra.httpStatus !== undefined && { httpStatus: extra.httpStatus }),
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
        // As the history numbers it: a lookup of attempt N's send is N, though its claim was N + 1.
        attempt: row.attempt ?? lease.attempt,
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
    if (d.deadlines?.isLost(lease) !== true) {
      const during = s.kind === 'released' && s.unconfirmed ? 'start' : 'settle'
      d.onEvent?.({ type: 'lease_lost', db: d.dbName, id: lease.id, during })
    }
    d.log.warn('lease lost before the outcome was recorded', {
      db: d.dbName,
      outboxId: lease.id,
      tenant: lease.tenant,
      attempt: lease.attempt,
      outcome: s.kind,
    })
  }
  d.done(lease, extra.startedAt !== undefined)
}
