// How long rows have waited with no row sent, read from the workers' registry and the outbox's newest rows: what tells an outage (nothing goes) from a throttle (rows go between its answers).
import { sql } from 'kysely'
import { PACED_CODE, PAUSED_CODE } from './settle-item.ts'

/** The newest rows looked at (by id, email_outbox_pkey): bounds the read however many rows are kept. */
export const NONE_SENT_WINDOW = 10_000

/**
 * A scalar subquery: seconds since the later of the newest send and the moment the oldest row
 * waiting came due, among the newest NONE_SENT_WINDOW rows. The newest send is the later of the
 * newest among those rows and the newest a worker's registry entry notes (sql/0201: its last
 * recorded send, written by its next beat: a beat late at most, a heartbeat while it sends, a lease
 * length idle), whatever its row's id: a campaign of older ids sending while newer rows wait on a
 * 429 is no outage. A clean stop removes the entry and keeps its note (sql/0204: the newest send of
 * the entries removed, one row), so a deploy that restarts every worker forgets none. The rows
 * still tell the sends of older binaries (they note none). A row waits when it is pending and due,
 * or was given back after a try (to a pause's end, a retry's, a pacing turn). An untried row came
 * due at the later of its creation and its send_at; one given back came due, at the latest, at its
 * first history entry since the newest send (email_attempts_pkey, its own entries), when that entry
 * was written (finished_at, the database's now(); its started_at is the worker's clock, which may
 * run minutes off the database's and dated the wait as early or as late): its send_at names its
 * next try, and its creation may be a schedule's day earlier or a requeued row's first
 * life (requeue.ts keeps last_error_code), either of which would read as hours with none sent. A row
 * with a code and no such entry (paced, or named by a block: no history) came due at its send_at
 * when that has passed, else at its creation; but a row a named mailbox's pause moved to its end
 * before any claim met it (mailbox_paused, a sender_key, no history at all: sql/0200) at now(): the
 * move overwrote the send_at it had, which may have been ahead (a row created an hour before, for two
 * minutes later, read as waiting an hour with none sent at one 429), so it counts as waiting and
 * dates nothing; the row that met the pause dates it (its history entry), and at the pause's end it
 * is due, dated by it. So does a row a pacing turn gave back (mailbox_paced, no history): claimed
 * when due, its send_at overwritten by its turn, it dates nothing until the turn has passed (a row
 * created an hour before for a minute before read as an hour with none sent). A row given back to
 * such a pause has history: unchanged. An untried row
 * scheduled ahead waits for nobody. The later of the newest send and that moment: a row that came
 * after a quiet hour and met a throttle has waited since it came, not an hour. Null when no row
 * waits, or when the window is full, holds no sent row and no note (an entry's, the stopped
 * workers') says a send (a backlog larger than it: a send among older rows cannot be ruled out).
 * sent_at is in no index (the table keeps every row; one would cost WAL at every settlement): the
 * newest ids are where the rows in play are, read backwards through the primary key,
 * NONE_SENT_WINDOW heap rows at most, and the history of the waiting rows given back among them;
 * the registry holds a row per worker, the stopped workers' note one.
 */
export const NONE_SENT_FOR_SECONDS = sql<number | null>`(
  with w as (
    select o.id, o.status = 'sent' as sent, o.sent_at, o.created_at, o.send_at, o.last_error_code, o.sender_key,
           o.status = 'pending' and (o.send_at <= now() or o.last_error_code is not null) as waiting
      from mailer.email_outbox o order by o.id desc limit ${sql.lit(NONE_SENT_WINDOW)}),
  s as (
    select greatest(max(w.sent_at) filter (where w.sent),
                    (select max(k.last_sent_at) from mailer.workers k),
                    (select k.last_sent_at from mailer.stopped_workers_last_send k)) as at,
           count(*) as n, count(*) filter (where w.waiting) as waiting
      from w)
  select case when s.waiting = 0 then null
              when s.n = ${sql.lit(NONE_SENT_WINDOW)} and s.at is null then null
              else -mailer.ms_until(greatest(s.at, (
                select min(case when w.last_error_code is null then greatest(w.created_at, w.send_at)
                                else coalesce((select min(a.finished_at)
                                                 from mailer.email_attempts a
                                                where a.outbox_id = w.id and (s.at is null or a.finished_at >= s.at)),
                                              case when w.send_at <= now() then greatest(w.created_at, w.send_at)
                                                   when (w.last_error_code = ${PACED_CODE}
                                                         or w.last_error_code = ${PAUSED_CODE} and w.sender_key is not null)
                                                        and not exists (select from mailer.email_attempts a
                                                                         where a.outbox_id = w.id) then now()
                                                   else w.created_at end)
                           end)
                  from w where w.waiting))) / 1000
         end
    from s)`
