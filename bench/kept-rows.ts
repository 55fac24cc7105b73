// Fills an outbox with a deployment's history: finished rows sent a day ago, each with its attempt row.
import type { Probe } from './systems/probe.ts'

const CHUNK = 100_000

// One chunk: $1 rows, text bodies of $2 hex digits; every $3-th row failed (0: none), the rest sent;
// each with its own order id as correlation id, `order-<n>` numbered on from $4.
const FILL = `
  with o as (
    insert into mailer.email_outbox (created_at, send_at, message, sent_at, attempts, status,
                                     last_error_code, correlation_id)
    select now() - interval '1 day', now() - interval '1 day',
           jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                              'subject', 'an inquiry',
                              'text', (select left(string_agg(md5(g::text || ':' || i::text), ''), $2::int)
                                         from generate_series(1, ($2::int + 31) / 32) i)),
           f.sent_at, 1, case when f.sent_at is null then 'failed' else 'sent' end,
           case when f.sent_at is null then 'graph_rejected' end, 'order-' || ($4::int + g)
      from generate_series(1, $1::int) g,
           lateral (select case when $3::int = 0 or g % $3::int <> 0 then now() - interval '1 day' end
                      as sent_at) f
    returning id, status, coalesce(sent_at, send_at) as finished_at
  )
  insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, finished_at, outcome,
                                     http_status, request_id)
  select id, 1, 'bench-aged', finished_at, finished_at, status,
         case when status = 'sent' then 202 else 400 end, gen_random_uuid()::text
    from o`

/**
 * Inserts `kept` finished rows (correlation ids `order-1` to `order-<kept>`) in chunks (one in `failedEvery` failed, 0 for none), then freezes and
 * analyzes both tables, as autovacuum leaves a deployment's old rows. Returns the seconds it took.
 */
export async function fillKept(
  probe: Probe,
  o: { kept: number; textBytes: number; failedEvery?: number },
): Promise<number> {
  const t0 = performance.now()
  for (let done = 0; done < o.kept; done += CHUNK)
    await probe.query(FILL, [Math.min(CHUNK, o.kept - done), o.textBytes, o.failedEvery ?? 0, done])
  await probe.query('vacuum (freeze, analyze) mailer.email_outbox, mailer.email_attempts')
  return (performance.now() - t0) / 1000
}
