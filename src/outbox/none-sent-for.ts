// How long rows have waited with no row sent, read from the workers' registry and the outbox's newest rows: what tells an outage (nothing goes) from a throttle (rows go between its answers).
import { sql } from 'kysely'
import { PACED_CODE, PAUSED_CODE } from './settle-item.ts'

/** The newest rows looked at (by id, email_outbox_pkey): bounds the read however many rows are kept. */
export const NONE_SENT_WINDOW = 10_000

/**
 * Up to this many rows given back, each one's history is read by email_attempts_pkey (about 4
 * buffers a row); past it, the history of their ids' span at once (about 180 buffers for a window
 * whose 10,000 rows hold an entry each).
 */
const FEW_GIVEN_BACK = 48

/** A row a pacing turn gave back, or a named mailbox's pause moved unclaimed (sql/0200), as `g`. */
const paceOrPause = sql`(g.last_error_code = ${PACED_CODE}
                         or g.last_error_code = ${PAUSED_CODE} and g.sender_key is not null)`

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
 * NONE_SENT_WINDOW heap rows at most, in one pass that counts and dates them and keeps the rows
 * given back (their columns, no second read), then the history of those; the registry holds a row
 * per worker, the stopped workers' note one. With no row pending nothing waits: the window is not
 * read (one probe of email_outbox_claim_idx), the answer null as the window would make it.
 */
export const NONE_SENT_FOR_SECONDS = sql<number | null>`(
  with s as (
    select greatest(max(w.sent_at) filter (where w.status = 'sent'),
                    (select max(k.last_sent_at) from mailer.workers k),
                    (select k.last_sent_at from mailer.stopped_workers_last_send k)) as at,
           count(*) as n, count(*) filter (where w.waiting) as waiting,
           min(greatest(w.created_at, w.send_at)) filter (where w.waiting and w.last_error_code is null) as untried,
           min(w.id) filter (where w.given) as low, max(w.id) filter (where w.given) as high,
           array_agg(w.id) filter (where w.given) as ids, array_agg(w.created_at) filter (where w.given) as created,
           array_agg(w.send_at) filter (where w.given) as due, array_agg(w.last_error_code) filter (where w.given) as codes,
           array_agg(w.sender_key) filter (where w.given) as keys
      from (select o.id, o.status, o.sent_at, o.created_at, o.send_at, o.last_error_code, o.sender_key, v.waiting,
                   v.waiting and o.last_error_code is not null as given
              from mailer.email_outbox o,
                   lateral (select o.status = 'pending' and (o.send_at <= now() or o.last_error_code is not null)
                              as waiting) v
             -- No pending row (email_outbox_claim_idx): none waits, the window is not read.
             where exists (select from mailer.email_outbox p where p.status = 'pending')
             order by o.id desc limit ${sql.lit(NONE_SENT_WINDOW)}) w),
  -- The rows given back, their columns as the window read them.
  g as (select g.* from s, unnest(s.ids, s.created, s.due, s.codes, s.keys)
                             as g(id, created_at, send_at, last_error_code, sender_key))
  select case when s.waiting = 0 then null
              when s.n = ${sql.lit(NONE_SENT_WINDOW)} and s.at is null then null
              -- Few rows given back: each one's history by email_attempts_pkey. Many: the history
              -- of their ids' span read once, its entries grouped by row.
              when coalesce(cardinality(s.ids), 0) <= ${sql.lit(FEW_GIVEN_BACK)}
              then -mailer.ms_until(greatest(s.at, least(s.untried, (
                select min(coalesce((select min(a.finished_at)
                                       from mailer.email_attempts a
                                      where a.outbox_id = g.id and (s.at is null or a.finished_at >= s.at)),
                                    case when g.send_at <= now() then greatest(g.created_at, g.send_at)
                                         when ${paceOrPause}
                                              and not exists (select from mailer.email_attempts a
                                                               where a.outbox_id = g.id) then now()
                                         else g.created_at end))
                  from g)))) / 1000
              else -mailer.ms_until(greatest(s.at, least(s.untried, (
                select min(coalesce(h.since,
                                    case when g.send_at <= now() then greatest(g.created_at, g.send_at)
                                         when ${paceOrPause} and h.outbox_id is null then now()
                                         else g.created_at end))
                  from g left join (
                    select a.outbox_id, min(a.finished_at)
                                          filter (where s.at is null or a.finished_at >= s.at) as since
                      from mailer.email_attempts a
                     where a.outbox_id between s.low and s.high
                     group by a.outbox_id) h on h.outbox_id = g.id)))) / 1000
         end
    from s)`
