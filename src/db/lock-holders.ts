// The sessions a migration that gave up at lock_timeout most likely waited behind: transactions open at least that long holding a lock on a table of schema mailer.
import type pg from 'pg'

/** A session in the way, named by what pg_stat_activity says of it (never its query's text: it may hold row data). */
export interface LockHolder {
  pid: number
  applicationName: string
  state: string | null
  /** How long its transaction has been open, in whole seconds. */
  openSeconds: number
  /** `mailer.email_outbox AccessShareLock`, one per lock it holds there. */
  locks: string[]
}

/**
 * Read after the wait was given up, on migrate's own session: the lock it waited for is not named
 * by the error, so the holders are those whose transaction is at least `olderThanMs` old (older
 * than the wait) with a granted lock on a relation of schema mailer; the oldest first, at most 5.
 * pg_locks and pg_stat_activity show other roles' sessions to a role with pg_read_all_stats (the
 * owner on managed Postgres often has it); to others, only its own.
 */
export async function readLockHolders(
  client: pg.Client,
  olderThanMs: number,
): Promise<LockHolder[]> {
  const { rows } = await client.query<LockHolder>(
    `select a.pid, a.application_name as "applicationName", a.state,
            floor(extract(epoch from now() - a.xact_start))::int as "openSeconds",
            array_agg(format('%s %s', l.relation::regclass, l.mode) order by l.relation, l.mode) as locks
       from pg_stat_activity a
       join pg_locks l on l.pid = a.pid and l.granted and l.database = (
              select oid from pg_database where datname = current_database())
       join pg_class c on c.oid = l.relation
       join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'mailer'
      where a.pid <> pg_backend_pid()
        and a.xact_start <= now() - make_interval(secs => $1::float8 / 1000)
      group by a.pid, a.application_name, a.state, a.xact_start
      order by a.xact_start
      limit 5`,
    [olderThanMs],
  )
  return rows
}

/** `pid 123 (report-job, idle in transaction, open 75 s, holding mailer.email_outbox AccessShareLock)`. */
export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} (${h.applicationName || 'no application_name'}, ${h.state ?? 'state unknown'}, open ${h.openSeconds} s, holding ${h.locks.join(', ')})`
}
