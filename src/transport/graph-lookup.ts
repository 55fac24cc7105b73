// Crash recovery: finds a message we may already have sent by its OutboxId extended property, of its own database.
import type { Logger } from '../log.ts'
import type { LookupResult } from '../outbox/mailbox-lookup.ts'
import type { TokenSlowKeep } from '../outbox/sender.ts'
import { parseGraphError } from './graph-error-text.ts'
import {
  DEFAULT_THROTTLE_MS,
  isMailboxQuota,
  SENDER_MAILBOX_PAUSE_MS,
  SENDING_QUOTA_PAUSE_MS,
  THROTTLE_STATUSES,
  throttleWaitMs,
} from './graph-outcome.ts'
import type { GraphRequest } from './graph-request.ts'
import { isTheRows, type ListedMessage, type LookupDatabase, type RowMail } from './lookup-match.ts'
import { lookupQuery, ROW_MAIL_SELECT } from './lookup-query.ts'
import type { SenderMailbox } from './sender-mailbox.ts'

/**
 * Messages per page: the matches of one id are one per database (or deployment) sending from the
 * mailbox, and a resend's; MAX_PAGES of them is a server that never ends its list, not a mailbox.
 */
const PAGE_SIZE = 50
const MAX_PAGES = 20

export function createMailboxLookup(d: {
  apiUrl: string
  request: GraphRequest
  log: Logger
  now: () => number
  senderMailbox?: SenderMailbox
  /** Absent: any message tagged with the outbox id is the row's (a sender for no database). */
  database?: Omit<LookupDatabase, 'id'>
  /** The database's own id (read once from it); absent: matched as before the id (lookup-match.ts). */
  databaseId?: () => Promise<string>
}) {
  const origin = new URL(d.apiUrl).origin
  return async (
    from: string,
    outboxId: string,
    signal: AbortSignal,
    mail?: RowMail,
    kept?: TokenSlowKeep,
  ): Promise<LookupResult> => {
    const mailbox = `${d.apiUrl}/users/${encodeURIComponent(from)}`
    let database: LookupDatabase | undefined = d.database
    if (d.database && d.databaseId) {
      const id = await d.databaseId().catch((err: unknown) => {
        d.log.warn('graph mailbox lookup not asked: the database id could not be read', {
          outboxId,
          err,
        })
        return null
      })
      // Unread (the database away): nothing to tell its messages by; asked again later.
      if (id === null) return 'error'
      database = { ...d.database, id }
    }
    // A match carrying no database id is told by its content (isTheRows).
    const select = database && (database.id || !database.alone) && mail ? ROW_MAIL_SELECT : 'id'
    const query = lookupQuery(outboxId, select, PAGE_SIZE)
    // Sent Items first (where a delivered message ends up), then the whole mailbox.
    for (const path of ['/mailFolders/sentitems/messages', '/messages']) {
      const found = await findInList(
        `${mailbox}${path}${query}`,
        from,
        outboxId,
        signal,
        mail,
        database,
        kept,
      )
      if (found !== 'not_found') return found
    }
    return 'not_found'
  }

  /** Follows the list's @odata.nextLink until a match is the row's or the list ends. */
  async function findInList(
    first: string,
    from: string,
    outboxId: string,
    signal: AbortSignal,
    mail: RowMail | undefined,
    database: LookupDatabase | undefined,
    kept: TokenSlowKeep | undefined,
  ): Promise<LookupResult> {
    let url: string | undefined = first
    for (let page = 1; url !== undefined; page++) {
      if (page > MAX_PAGES) {
        d.log.warn('graph mailbox lookup did not end', { outboxId, pages: MAX_PAGES })
        return 'error'
      }
      // A worker alone keeps the lookup for a slow token request after a 401, as it keeps a send
      // (graph-request.ts): given back token_slow, it would wait for that request all the same.
      const exchange = await d.request(url, { method: 'GET' }, signal, undefined, kept)
      if ('failed' in exchange) {
        const failed = exchange.failed
        d.log.warn('graph mailbox lookup failed', {
          outboxId,
          code: failed.kind === 'sent' ? undefined : failed.code,
        })
        // A stop's abort (a worker alone's kept wait for its token, or past the grace the request)
        // learned nothing: the caller releases the row. Only that: Graph's own failure is 'error'.
        if (failed.kind === 'retry' && failed.code === 'aborted') return 'stopped'
        // No token, or Graph out of reach or refusing every token: a send would meet the same wait.
        if (exchange.unsent && failed.kind === 'retry') return { unreachable: failed }
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
          return {
            throttledForMs: throttleWaitMs(res.headers, d.now(), DEFAULT_THROTTLE_MS),
            httpStatus: res.status,
          }
        }
        // A full mailbox refuses reads too (a 403): no missing Mail.Read, asked again as a send is,
        // Graph's code kept as the send's is (its row's code, /metrics' cause: a throttle).
        if (error.code !== undefined && isMailboxQuota(error.code)) {
          return {
            throttledForMs: throttleWaitMs(res.headers, d.now(), SENDING_QUOTA_PAUSE_MS),
            httpStatus: res.status,
            quota: {
              code: error.code,
              message: error.message ?? `Graph answered HTTP ${res.status}`,
            },
          }
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
      const list = messageList(text)
      if (list === undefined) return 'error'
      if (list.messages.some((m) => isTheRows(m, database, mail))) return 'found'
      url = list.nextLink
      // The token goes only where the API URL points: a next page elsewhere is no page of ours.
      if (url !== undefined && !sameOrigin(url, origin)) {
        d.log.warn('graph mailbox lookup paged elsewhere', { outboxId })
        return 'error'
      }
    }
    return 'not_found'
  }
}

function messageList(
  text: string,
): { messages: ListedMessage[]; nextLink: string | undefined } | undefined {
  try {
    const json = JSON.parse(text) as { value?: unknown; '@odata.nextLink'?: unknown }
    if (!Array.isArray(json.value)) return undefined
    const next = json['@odata.nextLink']
    return {
      messages: json.value.filter((m): m is ListedMessage => typeof m === 'object' && m !== null),
      nextLink: typeof next === 'string' && next !== '' ? next : undefined,
    }
  } catch {
    return undefined
  }
}

function sameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === origin
  } catch {
    return false
  }
}
