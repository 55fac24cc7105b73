// A batch of settlements as settleLeases' input rows: one array parameter a column, the provider's texts made storable.
import { sql } from 'kysely'
import { NOT_SENT_BEFORE_EXPIRY } from './earlier-interrupted.ts'
import type { SettleItem, Settlement } from './settle-item.ts'
import type { Fit } from './storable-in-encoding.ts'

/** The input rows (id, token, kind, code, message, …) of `items`, each column one unnest array. */
export function settleInput(items: readonly SettleItem[], storable: Fit) {
  const col = <T>(f: (i: SettleItem, s: Settlement) => T) => items.map((i) => f(i, i.settlement))
  return sql`select * from unnest(
        ${col((i) => i.id)}::bigint[], ${col((i) => i.token)}::uuid[], ${col((_, s) => s.kind)}::text[],
        ${col((_, s) => ('code' in s ? storable(s.code) : null))}::text[],
        ${col((_, s) => ('message' in s && s.message !== undefined ? storable(s.message) : s.kind === 'expired' && s.notSent ? NOT_SENT_BEFORE_EXPIRY : null))}::text[],
        ${col((_, s) => (s.kind === 'retry' ? s.delayMs : 0))}::float8[],
        ${col((_, s) => s.kind === 'released' || (s.kind === 'retry' && s.throttled))}::bool[],
        ${col((i, s) => (s.kind === 'retry' || s.kind === 'failed' || s.kind === 'cancelled' ? s.ambiguous === true : s.kind === 'expired' || s.kind === 'exhausted' ? s.notSent !== true && i.ambiguous === true : s.kind === 'released' && i.ambiguous === true))}::bool[],
        ${col((i) => i.startedAt?.getTime() ?? null)}::float8[], ${col((i) => i.httpStatus ?? null)}::int[],
        ${col((i) => (i.requestId == null ? null : storable(i.requestId)))}::text[],
        ${col((i) => i.uncounted === true)}::bool[],
        ${col((_, s) => s.kind === 'retry' && s.lookUpFirst === true)}::bool[],
        ${col((i, s) => i.cancelRequested === true && i.ambiguous === true && (s.kind === 'released' || (s.kind === 'retry' && s.throttled)))}::bool[],
        ${col((_, s) => s.kind === 'retry' && s.lookupWait === true)}::bool[],
        ${col((i) => i.pastExpiry === true)}::bool[],
        ${col((_, s) => (s.kind === 'retry' && s.resentUnverified ? (s.resentUnverified.sendAmbiguous ? 'both' : 'earlier') : s.kind === 'failed' && s.resentUnverified ? 'earlier' : null))}::text[],
        ${col((_, s) => s.kind === 'failed' && s.lookupRefused === true)}::bool[]
      ) as t(id, token, kind, code, message, delay_ms, refund, ambiguous, started_ms, http_status, request_id, past, look_first, look_again, lookup_wait, past_expiry, resent, lookup_refused)`
}
