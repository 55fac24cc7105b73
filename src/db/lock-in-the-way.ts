// The sessions holding (or queued for) a table lock on a table of schema mailer that a bounded read of ours gave up waiting for: named by pid, application_name and age, never their query.
import type { Queryable } from './queryable.ts'

/** lock_timeout's SQLSTATE: a statement gave up waiting for a lock. */
export const LOCK_TIMEOUT_SQLSTATE = '55P03'

export interface LockInTheWay {
  /** `mailer.email_outbox`. */
  relation: string
  pid: number
  applicationName: string | null
  /** False: queued for the lock (an ALTER TABLE or VACUUM FULL waiting), which blocks those behind it too. */
  granted: boolean
  /** Seconds since its transaction began; null when this role may not see it (no pg_read_all_stats). */
  openSeconds: number | null
  /** Queued: the pids it waits behind (pg_blocking_pids), the sessions to end; held: empty. */
  behind: number[]
}

/** The table lock modes a write (ROW EXCLUSIVE: a claim, an UPDATE) waits behind; a read, the last alone. */
export const MODES_A_WRITE_WAITS_FOR = [
  'ShareLock',
  'ShareRowExclusiveLock',
  'ExclusiveLock',
  'AccessExclusiveLock',
] as const

/**
 * Read after the wait was given up, so the waiter is gone: every other session with a lock the
 * waiter conflicts with (`modes`, held or queued; a read's by default, ACCESS EXCLUSIVE) on a
 * relation of schema mailer (`relation` alone, when given), the holders first, then the oldest; at
 * most 3. pg_locks needs no privilege; pg_stat_activity's columns of another role's session need
 * pg_read_all_stats.
 */
export async function readLocksInTheWay(
  q: Queryable,
  relation?: string,
  modes: readonly string[] = ['AccessExclusiveLock'],
): Promise<LockInTheWay[]> {
  const { rows } = await q.query<LockInTheWay>(
    `select l.relation::regclass::text as relation, l.pid, a.application_name as "applicationName",
            l.granted, floor(extract(epoch from now() - a.xact_start))::int as "openSeconds",
            case when l.granted then '{}'::int[] else pg_blocking_pids(l.pid) end as behind
       from pg_locks l
       join pg_class c on c.oid = l.relation
       join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'mailer'
       left join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'relation' and l.mode = any($2::text[])
        and l.database = (select oid from pg_database where datname = current_database())
        and l.pid <> pg_backend_pid() and ($1::text is null or l.relation = to_regclass($1))
      order by l.granted desc, a.xact_start nulls last
      limit 3`,
    [relation ?? null, modes],
  )
  return rows
}

/**
 * `a lock on mailer.email_outbox held by pid 123 (hand-session, open 75 s)`, or `queued by pid 124
 * (…) behind pid 123`: a queued ALTER TABLE blocks every read after it, and ends when those it
 * waits behind do. Joined by `; `.
 */
export function describeLocksInTheWay(locks: readonly LockInTheWay[]): string {
  return locks
    .map((l) => {
      const open =
        l.openSeconds === null ? 'age not visible to this role' : `open ${l.openSeconds} s`
      const behind = l.behind.length > 0 ? ` behind pid ${l.behind.join(', ')}` : ''
      return `a lock on ${l.relation} ${l.granted ? 'held' : 'queued'} by pid ${l.pid} (${l.applicationName || 'no application_name'}, ${open})${behind}`
    })
    .join('; ')
}
