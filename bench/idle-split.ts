// `bun run bench/idle-split.ts [cycles] [rows]`: where the engine's pickup after an idle spell goes, step by step.
//
// The engine in this process (as bench/systems/outbox-engine.ts starts it, instant sender), on a
// cluster of its own that logs every statement's duration and every connection. Each cycle starts
// the engine, lets it idle 11 s (longer than the pool's 10 s idle timeout), commits `rows` rows
// 11 s apart and stops it. Per row, from the insert's acknowledged commit: the notification heard,
// the claim sent and answered (with its server-side parse + bind + execute, from the log), the
// send started, and the connections opened meanwhile. Three kinds of row apart: the first of the
// first cycle (a fresh process: nothing compiled yet), the first of a later cycle (a new LISTEN
// session, a process that ran the path before) and the later rows (an idle spell on a session that
// ran the claim before). SPLIT_LINES=1 prints the server's lines per row.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres } from '../src/embedded-postgres.ts'
import { CHANNEL } from '../src/outbox/listen-session.ts'
import { median } from './percentiles.ts'
import { outboxEngineSystem } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

const cycles = Number(process.argv[2] ?? 3)
const rowsPerCycle = Number(process.argv[3] ?? 3)
const GAP_MS = 11_000
const CLAIM = /^outbox_claim/

// Every statement the engine's clients send (its marker, or its first words) and when it was
// answered; and when a notification reached one of them. The probe and admin clients are left out.
type Trip = { what: string; sent: number; answered: number }
const trips: Trip[] = []
const notified: number[] = []
const ignored = new WeakSet<pg.Client>()
const plainQuery = pg.Client.prototype.query as unknown as (...a: unknown[]) => unknown
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const r = plainQuery.apply(this, args) as Promise<unknown> | undefined
  if (ignored.has(this) || typeof r?.then !== 'function') return r
  const q = args[0] as string | { text?: string }
  const text = typeof q === 'string' ? q : (q?.text ?? '')
  const what = /\/\* prepared ([a-z_0-9]+) \*\//.exec(text)?.[1] ?? text.trim().slice(0, 30)
  const sent = performance.now()
  void r.then(
    () => trips.push({ what, sent, answered: performance.now() }),
    () => {},
  )
  return r
} as unknown as pg.Client['query']
const plainEmit = pg.Client.prototype.emit
pg.Client.prototype.emit = function (this: pg.Client, event: string | symbol, ...args: unknown[]) {
  if (event === 'notification' && (args[0] as { channel?: string })?.channel === CHANNEL)
    notified.push(performance.now())
  return plainEmit.call(this, event, ...args)
}

const lines: string[] = []
const dir = await mkdtemp(join(tmpdir(), 'outbox-bench-pg-'))
const server = await startEmbeddedPostgres({
  dir,
  persistent: false,
  extraFlags: [
    '-c',
    'log_line_prefix=[%p] ',
    '-c',
    'log_connections=on',
    '-c',
    'log_min_duration_statement=0',
  ],
  onLog: (t) => lines.push(...t.split('\n').filter((l) => l)),
})
const admin = new pg.Client({ connectionString: server.url('postgres') })
ignored.add(admin)
await admin.connect()
await admin.query('create database split')
const url = server.url('split')
const probe = await openProbe(url)
const sys = outboxEngineSystem('split', url, probe)
await sys.prepare()

type Row = { kind: 'fresh process' | 'new session' | 'later rows'; [k: string]: number | string }
const table: Row[] = []
const fmt = (x: number | undefined) => (x === undefined ? Number.NaN : Number(x.toFixed(2)))
try {
  for (let c = 1; c <= cycles; c++) {
    // The suite empties the tables before its run (truncate, vacuum): SPLIT_RESET=once does so only before the first cycle.
    if (c === 1 || process.env.SPLIT_RESET !== 'once') await sys.reset()
    let started = 0
    await sys.start({ concurrency: 10, onStart: () => (started = performance.now()) })
    for (let r = 1; r <= rowsPerCycle; r++) {
      await Bun.sleep(GAP_MS)
      trips.length = 0
      notified.length = 0
      started = 0
      const from = lines.length
      const t0 = performance.now()
      await sys.insertOne(r)
      const committed = performance.now()
      const deadline = committed + 5000
      while (started === 0 && performance.now() < deadline) await Bun.sleep(1)
      // The server's lines for the row (its settlement's too) have come by then.
      await Bun.sleep(300)
      const claim = trips.find((t) => CLAIM.test(t.what) && t.sent >= t0)
      const mine = lines.slice(from)
      if (process.env.SPLIT_LINES) console.log(`cycle ${c} row ${r}\n${mine.join('\n')}`)
      // parse / bind / execute of the claim (the first statement the row's claim sent).
      const server = mine
        .filter((l) => claim && l.includes(`duration:`) && l.includes(claim.what))
        .map((l) => Number(/duration: ([\d.]+) ms/.exec(l)?.[1] ?? 0))
        .reduce((a, b) => a + b, 0)
      table.push({
        kind: r > 1 ? 'later rows' : c === 1 ? 'fresh process' : 'new session',
        cycle: c,
        row: r,
        'commit→notified': fmt(notified[0]! - committed),
        'notified→claim sent': fmt(claim && claim.sent - notified[0]!),
        'claim trip': fmt(claim && claim.answered - claim.sent),
        'of it server': fmt(server),
        'answered→send': fmt(claim && started ? started - claim.answered : undefined),
        'commit→send': fmt(started ? started - committed : undefined),
        'conns opened': mine.filter((l) => l.includes('connection authorized')).length,
        claim: claim?.what ?? '–',
      })
    }
    await sys.stop()
  }
  console.table(table)
  for (const kind of ['fresh process', 'new session', 'later rows'] as const) {
    const rows = table.filter((t) => t.kind === kind)
    if (rows.length === 0) continue
    const med = (k: string) => median(rows.map((t) => Number(t[k]))).toFixed(2)
    console.log(
      `${kind} (${rows.length}): commit→notified ${med('commit→notified')}, →claim sent ${med('notified→claim sent')}, claim trip ${med('claim trip')} (server ${med('of it server')}), answered→send ${med('answered→send')}; commit→send ${med('commit→send')} ms (medians)`,
    )
  }
} finally {
  await probe.close()
  await admin.end()
  await server.stop()
}
