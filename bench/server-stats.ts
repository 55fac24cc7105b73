// Snapshots of what a system costs the server: statements, transactions, WAL, CPU time; and connections held.
import { readdir, readFile } from 'node:fs/promises'
import type pg from 'pg'

export interface ServerSnapshot {
  at: number
  /** Top-level statements in the database, by roles other than bench_probe. */
  statements: number
  transactions: number
  walLsn: string
  /**
   * CPU seconds (utime + stime) per server process that works for this database: its backends and
   * autovacuum workers, and the shared processes (postmaster, WAL writer, checkpointer, background
   * writer, …); not the benchmark's own connections, nor backends or autovacuum workers of the
   * other systems' databases (whose garbage would otherwise be billed to whoever runs next).
   */
  cpuByPid: Map<number, number>
}

export interface ServerCost {
  seconds: number
  statements: number
  transactions: number
  walBytes: number
  cpuSeconds: number
}

const TICKS = 100 // sysconf(_SC_CLK_TCK) on Linux

async function procStat(pid: number): Promise<{ ppid: number; ticks: number } | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8')
    // Fields after the parenthesised command name: state(3) ppid(4) ... utime(14) stime(15).
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) }
  } catch {
    return null
  }
}

/** CPU seconds (utime + stime) one server process has used so far (e.g. a backend, by pg_backend_pid()). */
export async function backendCpuSeconds(pid: number): Promise<number> {
  const s = await procStat(pid)
  if (!s) throw new Error(`no server process ${pid}`)
  return s.ticks / TICKS
}

/** CPU seconds of the postmaster and of each child in `include` (by pid). */
export async function serverCpuSeconds(
  postmaster: number,
  include: (pid: number) => boolean,
): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  const own = await procStat(postmaster)
  if (own) out.set(postmaster, own.ticks / TICKS)
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number)
  const stats = await Promise.all(pids.map(async (pid) => ({ pid, s: await procStat(pid) })))
  for (const { pid, s } of stats) {
    if (s && s.ppid === postmaster && include(pid)) out.set(pid, s.ticks / TICKS)
  }
  return out
}

export async function snapshot(
  admin: pg.Client,
  postmaster: number,
  db: string,
): Promise<ServerSnapshot> {
  const r = await admin.query<{
    statements: string
    transactions: string
    lsn: string
    excluded: number[] | null
  }>(
    `select
       (select coalesce(sum(s.calls), 0) from pg_stat_statements s
          join pg_database d on d.oid = s.dbid join pg_roles r on r.oid = s.userid
         where d.datname = $1 and r.rolname <> 'bench_probe') as statements,
       (select xact_commit + xact_rollback from pg_stat_database where datname = $1) as transactions,
       pg_current_wal_insert_lsn()::text as lsn,
       (select array_agg(pid) from pg_stat_activity
         where usename = 'bench_probe' or application_name like 'bench:%'
            or (backend_type in ('client backend', 'autovacuum worker') and datname is distinct from $1))
         as excluded`,
    [db],
  )
  const row = r.rows[0]!
  const excluded = new Set(row.excluded ?? [])
  return {
    at: performance.now(),
    statements: Number(row.statements),
    transactions: Number(row.transactions),
    walLsn: row.lsn,
    cpuByPid: await serverCpuSeconds(postmaster, (pid) => !excluded.has(pid)),
  }
}

/** Client backends each database has open, not counting the benchmark's own (bench_probe). */
export async function clientBackends(
  admin: pg.Client,
  databases: readonly string[],
): Promise<number[]> {
  const r = await admin.query<{ db: string; n: number }>(
    `select datname as db, count(*)::int as n from pg_stat_activity
      where datname = any($1) and usename <> 'bench_probe' and backend_type = 'client backend'
      group by datname`,
    [databases],
  )
  const byDb = new Map(r.rows.map((x) => [x.db, x.n]))
  return databases.map((db) => byDb.get(db) ?? 0)
}

export function lsnBytes(lsn: string): bigint {
  const [hi, lo] = lsn.split('/')
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`)
}

export function costBetween(a: ServerSnapshot, b: ServerSnapshot, walFrom?: string): ServerCost {
  return {
    seconds: (b.at - a.at) / 1000,
    statements: b.statements - a.statements,
    transactions: b.transactions - a.transactions,
    walBytes: Number(lsnBytes(b.walLsn) - lsnBytes(walFrom ?? a.walLsn)),
    // Processes that started in between count from zero; one that exited in between is lost (rare).
    cpuSeconds: [...b.cpuByPid].reduce((sum, [pid, t]) => sum + t - (a.cpuByPid.get(pid) ?? 0), 0),
  }
}
