// A worker's clean stop in the registry: its entry removed, and the newest send the removed entries noted kept (sql/0204).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { UnnotedSend } from './last-send.ts'

/**
 * Removes this worker from the registry on a clean stop, unless a row in flight still names its
 * lease key (a send the stop could not record; email_outbox_sending_idx): its entry then stays until
 * silent for a day, so the key is not drawn again while that row names it and a reclaim's history
 * names the worker. Also removes entries silent for a day. The newest send the removed entries
 * noted (sql/0201) is kept in mailer.stopped_workers_last_send, never moved back, in the same
 * statement: status reads the outbox's newest send from there too (none-sent-for.ts), so a deploy
 * that stops every worker does not make a campaign of older ids, sent moments before, read as none.
 * So is `unnotedSend`, the worker's send recorded since its last committed beat (last-send.ts;
 * database time, now() less its age): its settlements and beats are over, the stop is its last
 * word. A worker killed without a stop loses that much, one beat at most.
 */
export async function deregisterWorker(
  db: Kysely<Database>,
  workerId: string,
  unnotedSend: UnnotedSend | null = null,
): Promise<void> {
  // Null with none: greatest() skips it.
  const agoSeconds = unnotedSend ? unnotedSend.agoMs / 1000 : null
  await sql`with gone as (
              delete from mailer.workers w
               where (w.id = ${workerId}
                      and not exists (select 1 from mailer.email_outbox o
                                       where o.status = 'sending' and o.lease_owner = w.lease_key))
                  or w.last_heartbeat_at < now() - interval '1 day'
              returning w.last_sent_at)
            insert into mailer.stopped_workers_last_send as k (last_sent_at)
            select s.at from (select greatest(max(g.last_sent_at),
                                              now() - make_interval(secs => ${agoSeconds}::float8)) as at
                                from gone g) s
             where s.at is not null
            on conflict (one) do update set last_sent_at = greatest(k.last_sent_at, excluded.last_sent_at)`.execute(
    db,
  )
}
