// settleLeases: records the outcomes of a batch of leases and their attempt history in one statement.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export type Settlement =
  | { kind: 'sent' }
  | { kind: 'failed'; code: string; message: string }
  | { kind: 'expired' }
  | { kind: 'cancelled' }
  | {
      kind: 'retry'
      code: string
      message: string
      delayMs: number
      /** Throttles do not count against max_attempts. */
      throttled: boolean
      /** The send may have reached the provider (aborted mid-send): the next attempt must resolve it. */
      ambiguous: boolean
    }
  /** Never started (e.g. shutdown before the send): back to pending, the attempt not counted. */
  | { kind: 'released' }

export interface SettleItem {
  id: string
  token: string
  settlement: Settlement
  startedAt: Date | null
  httpStatus?: number | undefined
  requestId?: string | undefined
}

export interface SettleParams {
  workerId: string
  defaultMaxAttempts: number
  throttleDeadlineSeconds: number
}

export interface SettledRow {
  id: string
  status: string
  outcome: string
  code: string | null
}

/**
 * Applies outcomes; returns the rows actually settled. A lease missing from the result was lost:
 * the caller logs it and never treats it as success.
 * Fenced by (id, lease_token, status = 'sending'); uses the primary key only.
 */
export async function settleLeases(
  db: Kysely<Database>,
  items: readonly SettleItem[],
  p: SettleParams,
): Promise<SettledRow[]> {
  if (items.length === 0) return []
  const col = <T>(f: (i: SettleItem) => T) => items.map(f)
  const s = (i: SettleItem) => i.settlement
  const { rows } = await sql<SettledRow>`
    with input as (
      select * from unnest(
        ${col((i) => i.id)}::bigint[], ${col((i) => i.token)}::uuid[], ${col((i) => s(i).kind)}::text[],
        ${col((i) => ('code' in s(i) ? (s(i) as { code: string }).code : null))}::text[],
        ${col((i) => ('message' in s(i) ? (s(i) as { message: string }).message : null))}::text[],
        ${col((i) => (s(i).kind === 'retry' ? (s(i) as { delayMs: number }).delayMs : 0))}::float8[],
        ${col((i) => s(i).kind === 'released' || (s(i).kind === 'retry' && (s(i) as { throttled: boolean }).throttled))}::bool[],
        ${col((i) => s(i).kind === 'retry' && (s(i) as { ambiguous: boolean }).ambiguous)}::bool[],
        ${col((i) => i.startedAt)}::timestamptz[], ${col((i) => i.httpStatus ?? null)}::int[],
        ${col((i) => i.requestId ?? null)}::text[]
      ) as t(id, token, kind, code, message, delay_ms, refund, ambiguous, started_at, http_status, request_id)
    ), decided as (
      select i.*, o.attempts - i.refund::int as attempts_after,
        case
          when i.kind in ('sent', 'cancelled', 'released') then i.kind
          when i.kind in ('failed', 'expired') then i.kind
          when (i.kind = 'retry' and i.refund and o.created_at + make_interval(secs => ${p.throttleDeadlineSeconds}) <= now()) then 'throttled_out'
          when o.expires_at is not null and now() + make_interval(secs => i.delay_ms / 1000) >= o.expires_at then 'expired'
          when o.attempts - i.refund::int >= coalesce(o.max_attempts, ${p.defaultMaxAttempts}) then 'exhausted'
          else 'retry'
        end as verdict
      from input i join mailer.email_outbox o on o.id = i.id
       where o.lease_token = i.token and o.status = 'sending'
       for update of o
    ), done as (
      update mailer.email_outbox o
         set status = case d.verdict when 'sent' then 'sent' when 'cancelled' then 'cancelled'
                                     when 'retry' then 'pending' when 'released' then 'pending' else 'failed' end,
             attempts = d.attempts_after,
             send_at = case when d.verdict = 'retry' then now() + make_interval(secs => d.delay_ms / 1000) else o.send_at end,
             sent_at = case when d.verdict = 'sent' then now() end,
             last_error_code = case d.verdict
               when 'sent' then null when 'released' then o.last_error_code
               when 'expired' then 'expired' when 'cancelled' then 'cancelled'
               when 'throttled_out' then 'throttled' else d.code end,
             last_error = case d.verdict
               when 'sent' then null when 'released' then o.last_error
               when 'expired' then 'not sent before expiresAt'
               when 'cancelled' then 'cancelled before the send started'
               when 'throttled_out' then 'still throttled at the throttle deadline: ' || coalesce(d.message, '')
               when 'exhausted' then 'attempts exhausted; last error: ' || coalesce(d.message, '')
               else d.message end,
             lease_owner = null, lease_token = null, lease_expires_at = null,
             send_started_at = case when d.verdict = 'retry' and d.ambiguous then coalesce(o.send_started_at, now()) end
        from decided d
       where o.id = d.id and o.lease_token = d.token
      returning o.id, o.status, d.verdict, o.last_error_code, o.last_error, o.attempts
    ), history as (
      insert into mailer.email_attempts
             (outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id, error_code, error)
      select d.id, d.attempts + i.refund::int, ${p.workerId}, i.started_at,
             case when d.verdict in ('throttled_out', 'exhausted') then 'failed'
                  when d.verdict = 'retry' and i.refund then 'throttled'
                  else d.verdict end,
             i.http_status, i.request_id, d.last_error_code, d.last_error
        from done d join input i on i.id = d.id
    )
    select id, status, verdict as outcome, last_error_code as code from done`.execute(db)
  return rows
}
