// An outbox a year in, for bench/year-outbox-api.ts: finished rows with their history, three tenants, a pending backlog at its end.
import type pg from 'pg'

const CHUNK = 250_000

/**
 * `rows` rows (ids 1…rows) created evenly over the year before 2026-12-07, in id order: tenants
 * acme 60 %, beta 30 %, corp 10 % (by id); every other row a dedupe key (`order-<id>`); one in three
 * enqueued by a trigger (template `order_confirmation` or `signup_welcome`, correlation id
 * `orders:<id>`, a source row), the others a message with a 520-character body. Sent, but one in 67
 * failed (four codes in turn: graph_rejected, ErrorInvalidRecipients, expired,
 * MailboxNotEnabledForRESTAPI) and one in 500 cancelled; the newest `pending` rows pending and due
 * within the last ten minutes, one in 7 of them given back by a throttle (attempts 1, due in five
 * minutes). History as the worker records it: one `sent` attempt a sent row, `retry`, `retry`,
 * `failed` a failed row, one `throttled` a throttled row. Vacuumed and analyzed after.
 */
export async function fillYearOutbox(c: pg.Client, rows: number, pending: number) {
  for (let from = 0; from < rows; from += CHUNK) {
    await c.query(
      `insert into mailer.email_outbox (tenant, dedupe_key, status, send_at, attempts, last_error_code,
         last_error, created_at, sent_at, correlation_id, message, template, source_row)
       select case when g % 10 < 6 then 'acme' when g % 10 < 9 then 'beta' else 'corp' end,
              case when g % 2 = 0 then 'order-' || g end,
              st, ts, case st when 'sent' then 1 when 'failed' then 3 else 0 end,
              case when st = 'failed' then (array['graph_rejected', 'ErrorInvalidRecipients', 'expired',
                                                  'MailboxNotEnabledForRESTAPI'])[1 + (g / 67) % 4] end,
              case when st = 'failed' then 'failed permanently' end,
              ts, case when st = 'sent' then ts + interval '3 s' end,
              case when g % 3 = 0 then 'orders:' || g end,
              case when g % 3 <> 0 then jsonb_build_object(
                'to', jsonb_build_array(jsonb_build_object('address', 'a' || (g % 5000) || '@example.com')),
                'subject', 'Your inquiry ' || g, 'text', repeat('Hello there. ', 40)) end,
              case when g % 3 = 0 then (array['order_confirmation', 'signup_welcome'])[1 + (g / 3) % 2] end,
              case when g % 3 = 0 then jsonb_build_object('id', g, 'email', 'c' || (g % 5000) || '@example.com',
                                                          'name', 'Customer ' || g, 'total', g % 1000) end
         from (select g, timestamptz '2025-12-07' + g * (interval '365 days' / $2::int) as ts,
                      case when g > $2::int - $3::int then 'pending' when g % 67 = 0 then 'failed'
                           when g % 500 = 1 then 'cancelled' else 'sent' end as st
                 from generate_series($1::int + 1, least($1::int + ${CHUNK}, $2::int)) g) s`,
      [from, rows, pending],
    )
  }
  await c.query(
    `update mailer.email_outbox set send_at = now() - interval '10 min' + (id % 600) * interval '1 s'
      where status = 'pending'`,
  )
  await c.query(
    `update mailer.email_outbox set attempts = 1, last_error_code = 'throttled', send_at = now() + interval '5 min'
      where status = 'pending' and id % 7 = 0`,
  )
  await c.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, finished_at, outcome,
                                        http_status, request_id)
     select id, 1, 'w1', sent_at - interval '1 s', sent_at, 'sent', 202, md5(id::text)
       from mailer.email_outbox where status = 'sent'`,
  )
  await c.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, finished_at, outcome,
                                        http_status, error_code, error)
     select id, a, 'w1', created_at + a * interval '1 min', created_at + a * interval '1 min' + interval '1 s',
            case when a < 3 then 'retry' else 'failed' end, case when a < 3 then 503 else 400 end,
            last_error_code, 'x'
       from mailer.email_outbox, generate_series(1, 3) a where status = 'failed'`,
  )
  await c.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, finished_at, outcome,
                                        http_status, error_code)
     select id, 1, 'w1', now() - interval '1 min', now() - interval '1 min', 'throttled', 429, 'throttled'
       from mailer.email_outbox where status = 'pending' and attempts = 1`,
  )
  await c.query('vacuum (freeze, analyze) mailer.email_outbox')
  await c.query('vacuum (freeze, analyze) mailer.email_attempts')
}
