// Worker presence: who holds claims, which workers beat in the registry, and whether a LISTEN session is connected.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { LISTENER_APPLICATION_NAME } from './listen-session.ts'

export interface WorkerPresence {
  /** Distinct workers holding the rows now `sending`. */
  claimHolders: number
  /**
   * Rows `sending` whose lease ended more than `overdueAfterSeconds` ago: every live worker should
   * have reclaimed them by then, and none did.
   */
  overdueLeases: number
  /**
   * The longest reclaim period of the live workers (each one's own LEASE_SECONDS, `overdueSeconds`
   * for an entry that notes none), or `overdueSeconds` with none live.
   */
  overdueAfterSeconds: number
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
 * the reader's LEASE_SECONDS, a worker of a longer one was not live between two beats. A live worker
 * reclaims any ended lease (whoever held it) at most about its own lease length after it ends: so a
 * lease ended longer ago than the longest of those has no worker left to take it. Judged by the
 * reader's, a lease of a worker gone in a rolling deploy was overdue while a worker of a longer
 * lease had not reclaimed yet.
 */
export async function workerPresence(
  db: Kysely<Database>,
  p: { liveSeconds: number; overdueSeconds: number },
): Promise<WorkerPresence> {
  const { rows } = await sql<WorkerPresence>`
    with live as (
      select lease_seconds from mailer.workers
       where last_heartbeat_at >= now() - make_interval(
               secs => coalesce(2 * lease_seconds, ${p.liveSeconds}::float8))
    ), reclaim as (
      select coalesce(max(coalesce(lease_seconds, ${p.overdueSeconds}::float8)),
                      ${p.overdueSeconds}::float8) as secs
        from live
    )
    select
      (select count(distinct lease_owner) from mailer.email_outbox
        where status = 'sending')::int as "claimHolders",
      (select count(*) from mailer.email_outbox
        where status = 'sending'
          and lease_expires_at < now() - make_interval(secs => (select secs from reclaim)))::int as "overdueLeases",
      (select secs from reclaim)::float8 as "overdueAfterSeconds",
      (select count(*) from live)::int as "liveWorkers",
      (select count(*) from pg_stat_activity
        where datname = current_database() and application_name = ${LISTENER_APPLICATION_NAME})::int as "listenerSessions"`.execute(
    db,
  )
  return (
    rows[0] ?? {
      claimHolders: 0,
      overdueLeases: 0,
      overdueAfterSeconds: p.overdueSeconds,
      liveWorkers: 0,
      listenerSessions: 0,
    }
  )
}
