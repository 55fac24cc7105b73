// How long rows have waited with no row sent, read from the outbox's newest rows: what tells an outage (nothing goes) from a throttle (rows go between its answers).
import { sql } from 'kysely'

/** The newest rows looked at (by id, email_outbox_pkey): bounds the read however many rows are kept. */
export const NONE_SENT_WINDOW = 10_000

/**
 * A scalar subquery: seconds since the later of the newest send and the moment the oldest row
 * waiting came due, among the newest NONE_SENT_WINDOW rows. A row waits when it is pending and due,
 * or was given back after a try (to a pause's end, a retry's, a pacing turn: its send_at names its
 * next try, so it came due at its creation); an untried row scheduled ahead waits for nobody. The
 * later of the two: a row that came after a quiet hour and met a throttle has waited since it came,
 * not an hour. Null when no row waits, or when the window is full and holds no sent row (a backlog
 * larger than it: a send among older rows cannot be ruled out). sent_at is in no index (the table
 * keeps every row): the newest ids are where the rows in play and the latest sends are, read
 * backwards through the primary key, NONE_SENT_WINDOW heap rows at most.
 */
export const NONE_SENT_FOR_SECONDS = sql<number | null>`(
  select case when count(*) filter (where w.waiting) = 0 then null
              when count(*) = ${sql.lit(NONE_SENT_WINDOW)} and count(*) filter (where w.sent) = 0 then null
              else -mailer.ms_until(greatest(max(w.sent_at) filter (where w.sent),
                                             min(w.came) filter (where w.waiting))) / 1000
         end
    from (select o.status = 'sent' as sent, o.sent_at,
                 o.status = 'pending' and (o.send_at <= now() or o.last_error_code is not null) as waiting,
                 case when o.last_error_code is null then greatest(o.created_at, o.send_at) else o.created_at end as came
            from mailer.email_outbox o order by o.id desc limit ${sql.lit(NONE_SENT_WINDOW)}) w)`
