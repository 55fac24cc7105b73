// A worker's clean stop in the registry: its entry removed, the newest send the removed entries noted kept (sql/0204), refused workers told when it could send.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { entryCanSend } from './entry-can-send.ts'
import type { UnnotedSend } from './last-send.ts'
import { liveRegistryEntry } from './live-registry-entry.ts'
import { WORKER_STOPPED } from './worker-stopped-notice.ts'

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
 * When its removed entry could send (entry-can-send.ts) and another live entry notes a refusal,
 * the statement notifies the workers (worker-stopped-notice.ts), sent as it commits: a refused one
 * asks then whether every live worker is refused, not at its next block a minute later. None
 * otherwise: a stop with no refused worker wakes nobody. The registry is a handful of rows.
 */
export async function deregisterWorker(
  db: Kysely<Database>,
  workerId: string,
  unnotedSend: UnnotedSend | null = null,
): Promise<void> {
  // Null with none: greatest() skips it.
  const agoSeconds = unnotedSend ? unnotedSend.agoMs / 1000 : null
  // The CTEs' writes run whether read or not; the last select reads the registry as it stood.
  await sql`with gone as (
              delete from mailer.workers w
               where (w.id = ${workerId}
                      and not exists (select 1 from mailer.email_outbox o
                                       where o.status = 'sending' and o.lease_owner = w.lease_key))
                  or w.last_heartbeat_at < now() - interval '1 day'
              returning w.id, w.last_sent_at, ${entryCanSend('w')} as could_send),
            kept as (
              insert into mailer.stopped_workers_last_send as k (last_sent_at)
              select s.at from (select greatest(max(g.last_sent_at),
                                                now() - make_interval(secs => ${agoSeconds}::float8)) as at
                                  from gone g) s
               where s.at is not null
              on conflict (one) do update set last_sent_at = greatest(k.last_sent_at, excluded.last_sent_at))
            select pg_notify('mailer_outbox', ${WORKER_STOPPED})
             where exists (select from gone g where g.id = ${workerId} and g.could_send)
               and exists (select from mailer.workers r
                            where r.id <> ${workerId} and r.credential_refused_code is not null
                              and ${liveRegistryEntry('r')})`.execute(db)
}
