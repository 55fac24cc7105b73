// Worker presence: who holds claims, which workers beat in the registry, and whether a LISTEN session is connected.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { LISTENER_APPLICATION_NAME } from './listen-session.ts'

export interface WorkerPresence {
  /** Distinct workers holding the rows now `sending`. */
  claimHolders: number
  /** Rows `sending` whose lease ended more than `overdueSeconds` ago: no worker reclaimed them. */
  overdueLeases: number
  /**
   * Registry entries that beat within two of their own lease lengths (sql/0084), or within
   * `liveSeconds` for one that notes none (an older binary's).
   */
  liveWorkers: number
  /** Sessions on this database that name themselves the listener (pg_stat_activity shows any role's). */
  listenerSessions: number
}

/**
 * One statement. The claims are read through email_outbox_sending_idx (in-flight rows only); the
 * registry (mailer.workers) holds one row per running worker. A live worker beats at least once
 * per its own lease length (the idle reclaim carries the beat), which its entry notes: judged by
 * the reader's LEASE_SECONDS, a worker of a longer one was not live between two beats. It reclaims
 * a lease at most about one lease length after it ends: so a lease overdue by more than that has no
 * worker left to take it.
 */
export async function workerPresence(
  db: Kysely<Database>,
  p: { liveSeconds: number; overdueSeconds: number },
): Promise<WorkerPresence> {
  const { rows } = await sql<WorkerPresence>`
    select
      (select count(distinct lease_owner) from mailer.email_outbox
        where status = 'sending')::int as "claimHolders",
      (select count(*) from mailer.email_outbox
        where status = 'sending'
          and lease_expires_at < now() - make_interval(secs => ${p.overdueSeconds}::float8))::int as "overdueLeases",
      (select count(*) from mailer.workers
        where last_heartbeat_at >= now() - make_interval(
                secs => coalesce(2 * lease_seconds, ${p.liveSeconds}::float8)))::int as "liveWorkers",
      (select count(*) from pg_stat_activity
        where datname = current_database() and application_name = ${LISTENER_APPLICATION_NAME})::int as "listenerSessions"`.execute(
    db,
  )
  return rows[0] ?? { claimHolders: 0, overdueLeases: 0, liveWorkers: 0, listenerSessions: 0 }
}
