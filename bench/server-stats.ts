// Snapshots of what a system costs the server: statements, transactions, WAL, CPU time, connections.
import { readdir, readFile } from 'node:fs/promises'
import type pg from 'pg'

export interface ServerSnapshot {
  at: number
  /** Top-level statements in the database, by roles other than bench_probe. */
  statements: number
  transactions: number
  walLsn: string
  /** utime + stime of the postmaster and its children, bench connections excluded, in seconds. */
  cpuSeconds: number
  connections: number
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

/** CPU seconds of the postmaster and every child, except the given backend pids. */
export async function serverCpuSeconds(postmaster: number, exclude: Set<number>): Promise<number> {
  let ticks = (await procStat(postmaster))?.ticks ?? 0
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number)
  const stats = await Promise.all(pids.map(async (pid) => ({ pid, s: await procStat(pid) })))
  for (const { pid, s } of stats) {
    if (s && s.ppid === postmaster && !exclude.has(pid)) ticks += s.ticks
  }
  return ticks / TICKS
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
    connections: string
    bench_pids: number[]
  }>(
    `select
       (select coalesce(sum(s.calls), 0) from pg_stat_statements s
          join pg_database d on d.oid = s.dbid join pg_roles r on r.oid = s.userid
         where d.datname = $1 and r.rolname <> 'bench_probe') as statements,
       (select xact_commit + xact_rollback from pg_stat_database where datname = $1) as transactions,
       pg_current_wal_insert_lsn()::text as lsn,
       (select count(*) from pg_stat_activity where datname = $1 and usename <> 'bench_probe'
           and backend_type = 'client backend') as connections,
       (select array_agg(pid) from pg_stat_activity
         where usename = 'bench_probe' or application_name like 'bench:%') as bench_pids`,
    [db],
  )
  const row = r.rows[0]!
  return {
    at: performance.now(),
    statements: Number(row.statements),
    transactions: Number(row.transactions),
    walLsn: row.lsn,
    cpuSeconds: await serverCpuSeconds(postmaster, new Set(row.bench_pids ?? [])),
    connections: Number(row.connections),
  }
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
    cpuSeconds: b.cpuSeconds - a.cpuSeconds,
  }
}
