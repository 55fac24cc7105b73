// Crash recovery: finds a message we may already have sent by the OutboxId extended property.
import type { Logger } from '../log.ts'
import type { LookupResult } from '../outbox/mailbox-lookup.ts'
import { parseGraphError } from './graph-error-text.ts'
import { OUTBOX_ID_PROPERTY_ID } from './graph-message.ts'
import {
  DEFAULT_THROTTLE_MS,
  SENDER_MAILBOX_PAUSE_MS,
  THROTTLE_STATUSES,
  throttleWaitMs,
} from './graph-outcome.ts'
import type { GraphRequest } from './graph-request.ts'
import type { SenderMailbox } from './sender-mailbox.ts'

/** The `$filter` that finds the message tagged with `outboxId` (OutboxId extended property). */
export function lookupFilter(outboxId: string): string {
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`
  return `singleValueExtendedProperties/Any(ep: ep/id eq ${quote(OUTBOX_ID_PROPERTY_ID)} and ep/value eq ${quote(outboxId)})`
}

export function createMailboxLookup(d: {
  apiUrl: string
  request: GraphRequest
  log: Logger
  now: () => number
  senderMailbox?: SenderMailbox
}) {
  return async (from: string, outboxId: string, signal: AbortSignal): Promise<LookupResult> => {
    const mailbox = `${d.apiUrl}/users/${encodeURIComponent(from)}`
    const query = `?$filter=${encodeURIComponent(lookupFilter(outboxId))}&$select=id&$top=1`
    // Sent Items first (where a delivered message ends up), then the whole mailbox.
    for (const path of ['/mailFolders/sentitems/messages', '/messages']) {
      const exchange = await d.request(`${mailbox}${path}${query}`, { method: 'GET' }, signal)
      if ('failed' in exchange) {
        const failed = exchange.failed
        d.log.warn('graph mailbox lookup failed', {
          outboxId,
          code: failed.kind === 'sent' ? undefined : failed.code,
        })
        // No token, or Graph out of reach or refusing every token: a send would meet the same wait.
        // A stop's abort stays 'error', which the caller releases.
        if (exchange.unsent && failed.kind === 'retry' && failed.code !== 'aborted') {
          return { unreachable: failed }
        }
        return 'error'
      }
      const { res, text } = exchange
      if (res.status !== 200) {
        const error = parseGraphError(text)
        const requestId = res.headers.get('request-id') ?? error.requestId
        d.log.warn('graph mailbox lookup refused', {
          outboxId,
          httpStatus: res.status,
          code: error.code,
          requestId,
        })
        if (THROTTLE_STATUSES.has(res.status)) {
          return { throttledForMs: throttleWaitMs(res.headers, d.now(), DEFAULT_THROTTLE_MS) }
        }
        if (res.status === 404) {
          const rejected = {
            code: error.code ?? `http_${res.status}`,
            message: error.message ?? `Graph answered HTTP ${res.status}`,
            httpStatus: res.status,
            ...(requestId ? { requestId } : {}),
          }
          if (!d.senderMailbox?.isDefault(from)) return { rejected }
          // MAIL_FROM refused: the configuration, not the row, as for a send (graph-outcome.ts);
          // the mailbox is left alone and the row asks again after the pause, uncounted.
          const retryInMs = throttleWaitMs(res.headers, d.now(), SENDER_MAILBOX_PAUSE_MS)
          d.senderMailbox.refused({ ...rejected, retryInMs })
          return { throttledForMs: retryInMs, refused: rejected }
        }
        // A 401 never comes here: the request settles it (a fresh token, else a wait).
        return res.status === 403 ? 'unavailable' : 'error'
      }
      const count = messageCount(text)
      if (count === undefined) return 'error'
      if (count > 0) return 'found'
    }
    return 'not_found'
  }
}

function messageCount(text: string): number | undefined {
  try {
    const value = (JSON.parse(text) as { value?: unknown }).value
    return Array.isArray(value) ? value.length : undefined
  } catch {
    return undefined
  }
}
