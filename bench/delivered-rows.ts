// The outbox and history the mayHaveBeenDelivered benches read: `rows` rows in the statuses a busy outbox keeps, 1-2 history entries each, vacuumed.
import type pg from 'pg'

/**
 * `rows` outbox rows, by id modulo 100: 8 in 100 failed (throttled, graph_rejected,
 * ErrorInvalidRecipients in turn), 2 cancelled, 10 pending (3 of them after a throttle), the rest
 * sent; a seventh of the failed and cancelled ones keep an interrupted send's mark; every row but
 * an untried pending one has 1-2 history entries, the first of one in 40 of the failed, cancelled
 * and pending ones an ambiguous_send, each with a worker and a request id (the history's width
 * decides the planner's choice between hashing its ambiguous_send entries and probing each row).
 * Vacuumed and analyzed.
 */
export async function fillDeliveredRows(pool: pg.Pool, rows: number): Promise<void> {
  const q = (text: string) => pool.query(text)
  await q(`insert into mailer.email_outbox (tenant, send_at, message, sent_at, attempts, status, last_error_code)
    select 't' || (g % 5), now() - interval '1 day',
           jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                              'subject', 's', 'text', md5(g::text)),
           case when g % 100 >= 20 then now() end,
           case when g % 100 between 10 and 19 then 0 else 1 end,
           case when g % 100 < 8 then 'failed' when g % 100 < 10 then 'cancelled'
                when g % 100 < 20 then 'pending' else 'sent' end,
           case when g % 100 < 8 then (array['throttled', 'graph_rejected', 'ErrorInvalidRecipients'])[1 + g % 3]
                when g % 100 < 10 then 'cancelled' when g % 100 < 13 then 'throttled' end
      from generate_series(1, ${rows}) g`)
  await q(`update mailer.email_outbox set send_started_at = now() - interval '1 hour'
            where status in ('failed', 'cancelled') and id % 7 = 0`)
  await q(`insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, error, kind,
                                             worker_id, request_id)
    select o.id, a, case when o.status = 'sent' and a = 1 then 'sent' else 'failed' end,
           case when o.status = 'sent' and a = 1 then null
                when o.id % 40 = 0 and o.status <> 'sent' and a = 1 then 'ambiguous_send'
                else coalesce(o.last_error_code, 'throttled') end,
           case when o.status = 'sent' and a = 1 then null else 'failed: an error of a usual length' end,
           case when o.status = 'sent' and a = 1 then null else 'attempt' end,
           'worker-' || (o.id % 4), gen_random_uuid()::text
      from mailer.email_outbox o, generate_series(1, 1 + (o.id % 2)::int) a
     where o.status <> 'pending' or o.last_error_code is not null`)
  await q('vacuum analyze mailer.email_outbox')
  await q('vacuum analyze mailer.email_attempts')
}
