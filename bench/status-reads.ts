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
// STATUS_READS_FROM=<another checkout> (a worktree of an earlier release, its own `bun install`)
// adds that checkout's whole read and every section, on the same rows, index shape and connection,
// the two checkouts taking turns at going first rep by rep: what runs second on a connection finds
// the pages the first touched already mapped, so each figure is reported by its place (read first,
// read second) and compared with the other checkout's at the same place. Use an even `reps` to
// give both orders the same count; an A/A run (a clone of this same commit) shows the bench's own spread.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import type { Database } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import { mailboxPauses } from '../src/outbox/mailbox-pauses.ts'
import { outboxStats } from '../src/outbox/outbox-stats.ts'
import { recentFailures } from '../src/outbox/recent-failures.ts'
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
/** The section reads as a checkout exports them (the same names since round 55). */
interface SectionReads {
  outboxStats: typeof outboxStats
  workerPresence: typeof workerPresence
  mailboxPauses: typeof mailboxPauses
  recentFailures: typeof recentFailures
}
const sectionsOf = (f: SectionReads): Record<string, Section> => ({
  counts: (db) => f.outboxStats(db, null),
  workers: (db) => f.workerPresence(db, { liveSeconds: 120, overdueSeconds: 60 }),
  pauses: (db) => f.mailboxPauses(db),
  // A 48 h window: every failed row (finished a day ago) is in it.
  failures: (db) => f.recentFailures(db, { hours: 48, limit: 5, scanLimit: 10_000 }),
  // As first written: every failed row kept looked at.
  'failures, all kept': (db) =>
    f.recentFailures(db, { hours: 48, limit: 5, scanLimit: 2_000_000_000 }),
})

type ReadStatus = typeof readDatabaseStatus
interface Checkout {
  label: string
  read: ReadStatus
  sections: Record<string, Section>
}
const ours: Checkout = {
  label: 'this checkout',
  read: readDatabaseStatus,
  sections: sectionsOf({ outboxStats, workerPresence, mailboxPauses, recentFailures }),
}
const otherCheckout = process.env.STATUS_READS_FROM
  ? resolve(process.env.STATUS_READS_FROM)
  : undefined
const load = async (path: string) => import(join(otherCheckout!, path))
const other: Checkout | undefined = otherCheckout
  ? {
      label: 'STATUS_READS_FROM',
      read: (await load('src/status/database-status.ts')).readDatabaseStatus,
      sections: sectionsOf({
        // outbox-stats.ts since round 58; a checkout before it has outboxStats in stats.ts.
        outboxStats: (
          (await load('src/outbox/outbox-stats.ts').catch(() => undefined)) ??
          (await load('src/outbox/stats.ts'))
        ).outboxStats,
        workerPresence: (await load('src/outbox/worker-presence.ts')).workerPresence,
        mailboxPauses: (await load('src/outbox/mailbox-pauses.ts')).mailboxPauses,
        recentFailures: (await load('src/outbox/recent-failures.ts')).recentFailures,
      }),
    }
  : undefined
const PLACES = ['read first', 'read second'] as const

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
  // Keyed `shape|checkout|what|place`; `what` is `whole`, `connect` or `section|turn[|cpu|faults]`.
  const times = new Map<string, number[]>()
  const add = (key: string, v: number) => times.set(key, [...(times.get(key) ?? []), v])
  const shapes = Object.keys(INDEX_SHAPES) as Shape[]
  for (let rep = 0; rep < reps; rep++) {
    // The checkouts' order swapped rep by rep, for the whole reads and on the new connection alike.
    const order = !other ? [ours] : rep % 2 === 0 ? [ours, other] : [other, ours]
    const placed = order.map((c, i) => [c, PLACES[i]!] as const)
    for (const shape of rep % 2 === 0 ? shapes : [...shapes].reverse()) {
      await buildIndex(probe, shape)
      // Each read once unmeasured, so that every page read below is in shared buffers.
      for (const [c, place] of placed) {
        await c.read(d, { timeoutMs: 30_000, leaseSeconds: 60 })
        const t0 = performance.now()
        const r = await c.read(d, { timeoutMs: 30_000, leaseSeconds: 60 })
        add(`${shape}|${c.label}|whole|${place}`, performance.now() - t0)
        if (!r.reachable || r.unread.length > 0) throw new Error(JSON.stringify(r))
      }
      // A new connection, as status opens: connecting, then each checkout's sections first and
      // again; the checkout read second finds the pages the first touched already mapped.
      const pool = new pg.Pool({ connectionString: d.url, max: 1 })
      const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
      const tc = performance.now()
      await pool.connect().then((c) => c.release())
      add(`${shape}|connect`, performance.now() - tc)
      const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!
        .pid
      for (const turn of ['first on it', 'again']) {
        for (const [c, place] of placed) {
          for (const [name, read] of Object.entries(c.sections)) {
            const key = `${shape}|${c.label}|${name}|${turn}`
            const u0 = backendUsage(pid)
            const t = performance.now()
            await read(db)
            add(`${key}|${place}`, performance.now() - t)
            const u1 = backendUsage(pid)
            add(`${key}|cpu|${place}`, u1.cpuMs - u0.cpuMs)
            add(`${key}|faults|${place}`, u1.faults - u0.faults)
          }
        }
      }
      await db.destroy()
    }
  }
  await probe.close()
  const m = (key: string, digits = 0) => fmt(median(times.get(key) ?? []), digits)
  const all = (key: string) => (times.get(key) ?? []).map((x) => fmt(x, 0)).join(', ')
  // One checkout's figure at one place: its median, with what else is asked for alongside.
  const at = (shape: Shape, c: Checkout, what: string, place: string, list = false) => {
    const key = `${shape}|${c.label}|${what}|${place}`
    return `${m(key, 1)} ms${list ? ` (${all(key)})` : ''}`
  }
  /** The other checkout's median over this one's at the same place. */
  const ratioAt = (shape: Shape, what: string, place: string) => {
    const [a, b] = [ours, other!].map((c) =>
      median(times.get(`${shape}|${c.label}|${what}|${place}`) ?? []),
    )
    return b! / a!
  }
  const ratio = (shape: Shape, what: string, place: string) =>
    `${fmt(ratioAt(shape, what, place), 2)}×`
  /** Both places' ratios by their geometric mean: the order's effect taken out. */
  const balanced = (shape: Shape, what: string) =>
    `${PLACES.map((p) => ratio(shape, what, p)).join(' and ')} at the same place, ${fmt(Math.sqrt(ratioAt(shape, what, PLACES[0]) * ratioAt(shape, what, PLACES[1])), 2)}× both orders`
  const section = (shape: Shape, name: string, turn: string) => {
    const what = `${name}|${turn}`
    const usage = (u: 'cpu' | 'faults', place: string) =>
      (other ? [ours, other] : [ours])
        .map((c) => m(`${shape}|${c.label}|${what}|${u}|${place}`))
        .join(' vs ')
    const server = (p: string) =>
      `server CPU ${usage('cpu', p)} ms, ${usage('faults', p)} minor faults`
    if (!other) return `${turn} ${at(shape, ours, what, PLACES[0])} (${server(PLACES[0])})`
    const places = PLACES.map(
      (p) => `${p} ${at(shape, ours, what, p)} vs ${at(shape, other, what, p)} (${server(p)})`,
    )
    return `${turn}: ${places.join('; ')}; ${balanced(shape, what)}`
  }
  if (other)
    console.log(
      `\nEach figure "this checkout vs STATUS_READS_FROM" at one place (read first or second of the two), and the latter ÷ the former; ${Math.ceil(reps / 2)} reps with this checkout read first, ${Math.floor(reps / 2)} with it read second.`,
    )
  for (const shape of shapes) {
    console.log(`\nfailed rows' index as ${shape}:`)
    if (!other)
      console.log(
        `status read of one database (connect included): median ${at(shape, ours, 'whole', PLACES[0], true)}`,
      )
    else
      console.log(
        `status read of one database (connect included): ${PLACES.map((p) => `${p} ${at(shape, ours, 'whole', p, true)} vs ${at(shape, other, 'whole', p, true)}`).join('; ')}; ${balanced(shape, 'whole')}`,
      )
    console.log(`  a new connection: connect median ${m(`${shape}|connect`, 1)} ms`)
    for (const name of Object.keys(ours.sections))
      for (const turn of ['first on it', 'again'])
        console.log(`  ${name}, ${section(shape, name, turn)}`)
  }
} finally {
  await cluster.stop()
}
