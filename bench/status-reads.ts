// `bun run bench/status-reads.ts [kept] [failedEvery] [reps]`: how long `outbox-mailer status` takes to read one database that keeps its history.
//
// Fills one outbox with `kept` finished rows (default 1,000,000, 100-digit text bodies; one in
// `failedEvery` failed, default 100: 10,000 failed rows, the one read whose cost grows with them),
// frozen and analyzed as autovacuum leaves old rows, then 1,000 due pending rows. Then, `reps` times
// (default 5), taking turns between the failed rows' index as 0025 builds it (carrying
// last_error_code) and as 0009 built it (A/B in one sitting, the index rebuilt between turns):
// reads the database as the command does (readDatabaseStatus: schema, counts, workers, pauses,
// failures, each in its own READ ONLY transaction); then on a new connection of its own, connecting
// and each section's statements, first on it and then again, with the CPU time and minor page
// faults of its server process (from /proc: the server runs here). A new backend pays for the first
// touch of each shared-buffer page it reads (its page tables are filled then), which the second
// read does not; fewer pages touched (0025: the codes from the index) is what makes it cheaper.
// Wall-clock medians on this machine (compare within one run only).
// STATUS_READS_FROM=<another checkout> (a worktree of an earlier release) adds that checkout's
// whole read and its pauses section, taking turns with this one's on the same rows and connection,
// so that a section a round changed is read against the release in one sitting.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import type { Database } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import { mailboxPauses } from '../src/outbox/mailbox-pauses.ts'
import { recentFailures } from '../src/outbox/recent-failures.ts'
import { outboxStats } from '../src/outbox/stats.ts'
import { workerPresence } from '../src/outbox/worker-presence.ts'
import { readDatabaseStatus } from '../src/status/database-status.ts'
import { startBenchCluster } from './cluster.ts'
import { fillKept } from './kept-rows.ts'
import { median } from './percentiles.ts'
import { fmt } from './report.ts'
import { openProbe, type Probe } from './systems/probe.ts'

const [kept, failedEvery, reps] = [1_000_000, 100, 5].map((d, i) => {
  const arg = process.argv[2 + i]
  const n = arg === undefined ? d : Number(arg)
  if (!Number.isInteger(n) || n < 1) {
    console.error('usage: bun run bench/status-reads.ts [kept ≥ 1] [failedEvery ≥ 1] [reps ≥ 1]')
    process.exit(2)
  }
  return n
}) as [number, number, number]

type Section = (db: Kysely<Database>) => Promise<unknown>
const SECTIONS: Record<string, Section> = {
  counts: (db) => outboxStats(db, null),
  workers: (db) => workerPresence(db, { liveSeconds: 120, overdueSeconds: 60 }),
  pauses: (db) => mailboxPauses(db),
  // A 48 h window: every failed row (finished a day ago) is in it.
  failures: (db) => recentFailures(db, { hours: 48, limit: 5, scanLimit: 10_000 }),
  // As first written: every failed row kept looked at.
  'failures, all kept': (db) =>
    recentFailures(db, { hours: 48, limit: 5, scanLimit: 2_000_000_000 }),
}

const otherCheckout = process.env.STATUS_READS_FROM
  ? resolve(process.env.STATUS_READS_FROM)
  : undefined
type ReadStatus = typeof readDatabaseStatus
const other: { read: ReadStatus; pauses: Section } | undefined = otherCheckout
  ? {
      read: (await import(join(otherCheckout, 'src/status/database-status.ts')))
        .readDatabaseStatus as ReadStatus,
      pauses: (await import(join(otherCheckout, 'src/outbox/mailbox-pauses.ts')))
        .mailboxPauses as Section,
    }
  : undefined
if (other) SECTIONS['pauses (STATUS_READS_FROM)'] = other.pauses

// The failed rows' index as each migration leaves it (same name, same rows).
const INDEX_SHAPES = {
  '0025 (code in the index)': 'include (last_error_code)',
  '0009 (status, id)': '',
} as const
type Shape = keyof typeof INDEX_SHAPES

async function buildIndex(probe: Probe, shape: Shape) {
  await probe.query('drop index if exists mailer.email_outbox_failed_cancelled_idx')
  await probe.query(
    `create index email_outbox_failed_cancelled_idx on mailer.email_outbox (status, id)
       ${INDEX_SHAPES[shape]} where status in ('failed', 'cancelled')`,
  )
  await probe.query('vacuum (analyze) mailer.email_outbox')
}

/** A server process's CPU time (ms, 10 ms ticks) and minor page faults so far. */
function backendUsage(pid: number): { cpuMs: number; faults: number } {
  // Fields after "(comm) ": state is 0, minflt 7, utime 11, stime 12.
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return { cpuMs: (Number(f[11]) + Number(f[12])) * 10, faults: Number(f[7]) }
}

const DB = 'outbox_status'
const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const probe = await openProbe(cluster.probeUrl(DB))
  const fillS = await fillKept(probe, { kept, textBytes: 100, failedEvery })
  await probe.query(
    `insert into mailer.email_outbox (message)
     select jsonb_build_object('to', 'a@example.com', 'subject', 'a backlog', 'text', 'x')
       from generate_series(1, 1000)`,
  )
  await probe.query('vacuum (analyze) mailer.email_outbox')
  console.log(
    `\n${fmt(kept)} finished rows kept (${fmt(Math.floor(kept / failedEvery))} failed), 1,000 pending, filled in ${fmt(fillS)} s`,
  )
  const d = { name: DB, url: cluster.url(DB), listenUrl: cluster.url(DB) }
  const times = new Map<string, number[]>()
  const add = (key: string, v: number) => times.set(key, [...(times.get(key) ?? []), v])
  const shapes = Object.keys(INDEX_SHAPES) as Shape[]
  for (let rep = 0; rep < reps; rep++) {
    for (const shape of rep % 2 === 0 ? shapes : [...shapes].reverse()) {
      await buildIndex(probe, shape)
      // Each read once unmeasured, so that every page read below is in shared buffers; with
      // STATUS_READS_FROM, the two reads' order swapped rep by rep.
      const ours: [string, ReadStatus] = ['whole', readDatabaseStatus]
      const reads: [string, ReadStatus][] = !other
        ? [ours]
        : rep % 2 === 0
          ? [ours, ['whole (STATUS_READS_FROM)', other.read]]
          : [['whole (STATUS_READS_FROM)', other.read], ours]
      for (const [key, read] of reads) {
        await read(d, { timeoutMs: 30_000, leaseSeconds: 60 })
        const t0 = performance.now()
        const r = await read(d, { timeoutMs: 30_000, leaseSeconds: 60 })
        add(`${shape}|${key}`, performance.now() - t0)
        if (!r.reachable || r.unread.length > 0) throw new Error(JSON.stringify(r))
      }
      // A new connection, as status opens: connecting, then each section first and again.
      const pool = new pg.Pool({ connectionString: d.url, max: 1 })
      const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
      const tc = performance.now()
      await pool.connect().then((c) => c.release())
      add(`${shape}|connect`, performance.now() - tc)
      const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!
        .pid
      for (const turn of ['first', 'again']) {
        for (const [name, read] of Object.entries(SECTIONS)) {
          const u0 = backendUsage(pid)
          const t = performance.now()
          await read(db)
          add(`${shape}|${name}|${turn}`, performance.now() - t)
          const u1 = backendUsage(pid)
          add(`${shape}|${name}|${turn}|cpu`, u1.cpuMs - u0.cpuMs)
          add(`${shape}|${name}|${turn}|faults`, u1.faults - u0.faults)
        }
      }
      await db.destroy()
    }
  }
  await probe.close()
  const m = (key: string, digits = 0) => {
    const v = times.get(key) ?? []
    return `${fmt(median(v), digits)}`
  }
  for (const shape of shapes) {
    console.log(`\nfailed rows' index as ${shape}:`)
    console.log(
      `status read of one database (connect included): median ${m(`${shape}|whole`, 1)} ms (${(times.get(`${shape}|whole`) ?? []).map((x) => fmt(x, 0)).join(', ')})`,
    )
    if (other)
      console.log(
        `  STATUS_READS_FROM's read: median ${m(`${shape}|whole (STATUS_READS_FROM)`, 1)} ms (${(times.get(`${shape}|whole (STATUS_READS_FROM)`) ?? []).map((x) => fmt(x, 0)).join(', ')})`,
      )
    console.log(`  a new connection: connect median ${m(`${shape}|connect`, 1)} ms`)
    for (const name of Object.keys(SECTIONS)) {
      const turn = (t: string) =>
        `${m(`${shape}|${name}|${t}`, 1)} ms (server CPU ${m(`${shape}|${name}|${t}|cpu`)} ms, ${m(`${shape}|${name}|${t}|faults`)} minor faults)`
      console.log(`  ${name}: first on it ${turn('first')}; again ${turn('again')}`)
    }
  }
} finally {
  await cluster.stop()
}
