// `bun run bench/idle-claim.ts [cycles] [gap seconds]`: the notified claim after an idle spell, on the LISTEN session or another, its backend idle or touched.
//
// No worker code: bare pg clients, as the engine and graphile-worker place their statements. Four
// variants, each on a database of its own (a NOTIFY reaches only its own database's listeners),
// their rows spread across each gap and their order rotated from cycle to cycle:
//   listen:          the claim on the LISTEN session that heard the notification (the engine idle);
//   listen+touch:    the same, with a `select 1` on that session every 2 s;
//   other:           the claim on a second session, idle since its last claim;
//   other+touch:     the claim on a second session that ran a `select 1` every 2 s (graphile-worker
//                    batched polls its pool connection every 2 s: its claim's backend is never idle long).
// Each row: the commit acknowledged → the notification heard → the claim (mailer.claim_notified for
// the named row, mark_started, a prepared statement as the engine sends it) called → answered.
// Printed per variant: medians of notified→answered (the claim's round trip) and commit→answered,
// and each variant less `listen`, paired by cycle; the claiming backend's CPU time, run-queue wait and
// minor page faults over the same span (/proc/<pid>/schedstat, /proc/<pid>/stat). `uptime` before and after.
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { OUTBOX_MESSAGE } from './systems/outbox-engine.ts'
import { rotated } from './turns.ts'

const cycles = Number(process.argv[2] ?? 10)
const gapMs = Number(process.argv[3] ?? 11) * 1000
const TOUCH_MS = 2000
console.log(`before: ${loadAverage()}`)

// A backend's time on a CPU and waiting for one (ns, /proc/<pid>/schedstat) and its minor page faults.
type Sched = { run: number; wait: number; faults: number }
const sched = (pid: number): Sched => {
  const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number)
  // /proc/<pid>/stat: the 10th field (after the parenthesised name) is minflt.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const faults = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7])
  return { run: run!, wait: wait!, faults }
}

const CLAIM = {
  name: 'outbox_claim_notified',
  text: `select mailer.claim_notified($1::bigint, $2::text, $3::uuid, $4::float8, $5::boolean, $6::int)::text as claim`,
}
const VARIANTS = ['listen', 'listen+touch', 'other', 'other+touch'] as const
type Variant = (typeof VARIANTS)[number]

const cluster = await startBenchCluster()
interface Placed {
  v: Variant
  probe: pg.Client
  listen: pg.Client
  claimOn: pg.Client
  notified: Map<string, number>
  /** The claiming session's backend pid. */
  pid: number
  timer?: ReturnType<typeof setInterval>
}
const placed: Placed[] = []
const client = async (url: string, name: string) => {
  const c = new pg.Client({ connectionString: url, application_name: name })
  await c.connect()
  return c
}
const claim = (c: pg.Client, id: string) =>
  c.query({ ...CLAIM, values: [id, 'bench', crypto.randomUUID(), 60, true, 5] })
try {
  for (const v of VARIANTS) {
    const db = `idle_claim_${v.replace('+', '_')}`
    await cluster.createDatabase(db)
    const url = cluster.url(db)
    await migrate({ url, log: silentLogger })
    const probe = await client(cluster.probeUrl(db), 'bench:probe')
    const listen = await client(url, 'listen')
    const claimOn = v.startsWith('listen') ? listen : await client(url, 'claim')
    const pid = (await claimOn.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!
      .pid
    const p: Placed = { v, probe, listen, claimOn, notified: new Map(), pid }
    listen.on('notification', (n) => p.notified.set(n.payload ?? '', performance.now()))
    await listen.query('listen mailer_outbox')
    // Warm: the claim prepared and run on the claiming session (as the engine's prime and pickups leave it).
    for (let i = 0; i < 5; i++) await claim(claimOn, '0')
    if (v.endsWith('touch')) p.timer = setInterval(() => void claimOn.query('select 1'), TOUCH_MS)
    placed.push(p)
  }
  type Result = {
    v: Variant
    cycle: number
    trip: number
    total: number
    notified: number
    /** The claiming backend's CPU time, run-queue wait (ms) and minor faults from the insert to the answer. */
    run: number
    wait: number
    faults: number
  }
  const results: Result[] = []
  for (let c = 0; c < cycles; c++) {
    const order = rotated(placed, c)
    const step = gapMs / order.length
    const begin = performance.now() + gapMs
    for (const [i, p] of order.entries()) {
      const wait = begin + i * step - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      const before = sched(p.pid)
      const r = await p.probe.query<{ id: string }>(
        `insert into mailer.email_outbox (message) values (${OUTBOX_MESSAGE}) returning id::text`,
      )
      const committed = performance.now()
      const id = r.rows[0]!.id
      const deadline = committed + 2000
      while (!p.notified.has(id) && performance.now() < deadline) await Bun.sleep(0)
      // The engine claims from the notification's handler turn; here from the first turn after it.
      const heard = p.notified.get(id) ?? performance.now()
      const called = performance.now()
      await claim(p.claimOn, id)
      const answered = performance.now()
      const after = sched(p.pid)
      results.push({
        run: (after.run - before.run) / 1e6,
        wait: (after.wait - before.wait) / 1e6,
        faults: after.faults - before.faults,
        v: p.v,
        cycle: c,
        trip: answered - called,
        total: answered - committed,
        notified: heard - committed,
      })
    }
    const line = order.map((p) => {
      const x = results.find((r) => r.v === p.v && r.cycle === c)!
      return `${p.v} ${x.trip.toFixed(2)}`
    })
    console.log(`cycle ${c + 1}/${cycles} (claim trips, ms): ${line.join('; ')}; ${loadAverage()}`)
  }
  const fmt = (x: number) => (Number.isNaN(x) ? '–' : x.toFixed(2))
  const of = (v: Variant) => results.filter((r) => r.v === v)
  console.table(
    VARIANTS.map((v) => {
      const diffs = of(v).flatMap((r) => {
        const base = of('listen').find((b) => b.cycle === r.cycle)
        return base ? [r.trip - base.trip] : []
      })
      return {
        variant: v,
        'commit→notified': fmt(median(of(v).map((r) => r.notified))),
        'claim trip': fmt(median(of(v).map((r) => r.trip))),
        'commit→answered': fmt(median(of(v).map((r) => r.total))),
        'backend CPU': fmt(median(of(v).map((r) => r.run))),
        'backend run-queue wait': fmt(median(of(v).map((r) => r.wait))),
        'minor faults': median(of(v).map((r) => r.faults)),
        'trip − listen, paired': fmt(median(diffs)),
        'lower than listen': `${diffs.filter((d) => d < 0).length}/${diffs.length}`,
      }
    }),
  )
  console.log(`after: ${loadAverage()}`)
} finally {
  for (const p of placed) {
    if (p.timer) clearInterval(p.timer)
    await p.probe.end().catch(() => {})
    await p.listen.end().catch(() => {})
    if (p.claimOn !== p.listen) await p.claimOn.end().catch(() => {})
  }
  await cluster.stop()
}
