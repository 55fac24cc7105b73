// `bun run bench/first-pickup-trace.ts [cycles] [rows] [first at s]`: the engine's pickups after idle, every pg event and server statement between a row's commit and its send start.
//
// The engine in this process (production defaults, the instant sender), warmed by one pickup
// window, then per cycle: started, its first row committed `first at` seconds after the start (the
// suite's engine row 1 comes 19-20 s after its start: 11 s of idle, then its place among seven
// systems' rows), the rest 11 s apart; stopped. Per row: commit → notification → claim called →
// answered → send start (ms after the acknowledged commit) from bench/systems/pg-trace.ts, which pg
// client carried the claim (#1 is the first the process made: a client first seen at a row is a
// connection opened for it), the other statements the engine's clients ran in the row's span, and
// the server's logged statements of the engine's database in it (duration, backend pid). Medians
// by kind of cycle and row number at the end. `uptime` before and after.
// TRACE_RESETS=delete,delete+rolled-back (round 36): the kinds of cycle, by turns. `truncate` (the
// default): the suite's reset (new, empty files); `delete`: rows deleted and vacuumed (the files
// and their pages kept, as in a table in use); a `+unflushed` suffix: the cycle's sessions commit
// without waiting for the WAL flush; `+rolled-back`: the listener primes with a claim of a row
// rolled back (bench/systems/outbox-engine.ts's BENCH_PRIME), not the claim for no row.
// TRACE_STRACE=1: the engine's backends' system calls (strace -tt -T) from 2 s after the start,
// printed per row.
import { readFileSync } from 'node:fs'
import { startBenchCluster } from './cluster.ts'
import { latencyWindow } from './latency.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { outboxEngineSystem } from './systems/outbox-engine.ts'
import { installPgTrace, type PgTraceEvent, takePgTrace } from './systems/pg-trace.ts'
import { openProbe } from './systems/probe.ts'

const cycles = Number(process.argv[2] ?? 4)
const rows = Number(process.argv[3] ?? 2)
const firstAtMs = Number(process.argv[4] ?? 19) * 1000
const GAP_MS = 11_000
console.log(`before: ${loadAverage()}`)
installPgTrace()
const serverLines: { at: number; pid: string; db: string; text: string }[] = []
const cluster = await startBenchCluster({
  extraFlags: ['-c', 'log_min_duration_statement=0', '-c', 'log_line_prefix=%n [%p] %d '],
  onLogLine: (l) => {
    const m = /^(\d+\.\d+) \[(\d+)\] (\S+) (.*)$/.exec(l)
    if (m) serverLines.push({ at: Number(m[1]) * 1000, pid: m[2]!, db: m[3]!, text: m[4]! })
  },
})
const epoch = (t: number) => performance.timeOrigin + t
const DB = 'outbox_engine'
await cluster.createDatabase(DB)
const probe = await openProbe(cluster.probeUrl(DB))
const starts = new Map<number, number>()
let onStart = (key: number) => {
  if (!starts.has(key)) starts.set(key, performance.now())
}
const sys = outboxEngineSystem(DB, cluster.url(DB), probe)
try {
  await sys.prepare()
  await latencyWindow(sys, { perSecond: 50, seconds: 1, concurrency: 10 })
  const byRow = new Map<string, Record<string, number[]>>()
  const seen = new Set<number>()
  for (const e of takePgTrace()) seen.add(e.client)
  // TRACE_RESETS=truncate,delete: each cycle's reset by turns. truncate: the suite's (new, empty
  // files); delete: the rows deleted and vacuumed (the indexes' pages and the visibility and free
  // space maps kept, as in a table that has been in use).
  const resets = (process.env.TRACE_RESETS ?? 'truncate').split(',')
  for (let c = 1; c <= cycles; c++) {
    const resetKind = resets[(c - 1) % resets.length]!
    // A "+unflushed" suffix: this cycle's sessions commit without waiting for the WAL flush.
    // A "+rolled-back" suffix: the listener primes with a claim of a row rolled back (BENCH_PRIME).
    process.env.BENCH_PRIME = resetKind.endsWith('+rolled-back') ? 'rolled-back' : ''
    await cluster.admin.query(
      `alter database ${DB} set synchronous_commit = ${resetKind.endsWith('+unflushed') ? 'off' : 'on'}`,
    )
    if (resetKind.startsWith('delete')) {
      await probe.query('delete from mailer.email_attempts')
      await probe.query('delete from mailer.email_outbox')
      await probe.query('delete from mailer.workers')
      await probe.query('vacuum analyze mailer.email_outbox, mailer.email_attempts')
    } else await sys.reset()
    starts.clear()
    takePgTrace()
    const startedAt = performance.now()
    await sys.start({ concurrency: 10, onStart: (k) => onStart(k) })
    const committed = new Map<number, { sent: number; acked: number }>()
    // TRACE_STRACE=1: the engine's backends' system calls from 2 s after the start, to a file per cycle.
    let strace: ReturnType<typeof Bun.spawn> | null = null
    let straceFile: string | null = null
    if (process.env.TRACE_STRACE === '1') {
      await Bun.sleep(2000)
      const pids = (
        await cluster.admin.query<{ pid: number }>(
          `select pid from pg_stat_activity where datname = $1 and usename <> 'bench_probe'`,
          [DB],
        )
      ).rows.map((r) => String(r.pid))
      straceFile = `/tmp/first-pickup-strace-${c}.txt`
      const file = straceFile
      strace = Bun.spawn(['strace', '-tt', '-T', '-o', file, ...pids.flatMap((p) => ['-p', p])], {
        stdio: ['ignore', 'ignore', 'ignore'],
      })
      console.log(`  strace of backends ${pids.join(', ')} to ${file}`)
    }
    for (let r = 1; r <= rows; r++) {
      const wait = startedAt + firstAtMs + (r - 1) * GAP_MS - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      const sent = performance.now()
      await sys.insertOne(r)
      committed.set(r, { sent, acked: performance.now() })
    }
    const deadline = performance.now() + 5000
    while (performance.now() < deadline && starts.size < rows) await Bun.sleep(20)
    await Bun.sleep(200)
    strace?.kill('SIGINT')
    await strace?.exited
    await sys.stop()
    const trace: PgTraceEvent[] = takePgTrace()
    for (const [r, { sent, acked }] of committed) {
      const at = (t: number) => (t - epoch(acked)).toFixed(2)
      const start = starts.get(r)
      const to = epoch(start ?? acked + 50) + 1
      const inSpan = trace.filter((e) => e.at >= epoch(sent) - 1 && e.at <= to)
      const notify = inSpan.find((e) => e.kind === 'notify')
      const call = inSpan.find((e) => e.kind === 'call' && /^outbox_claim/.test(e.what))
      const answer = call
        ? trace.find((e) => e.kind === 'answer' && e.client === call.client && e.at >= call.at)
        : undefined
      // A client with no event before this row's insert: a connection opened for the row.
      const fresh = call
        ? !seen.has(call.client) &&
          !trace.some((e) => e.client === call.client && e.at < epoch(sent))
        : false
      const others = inSpan.filter((e) => e.kind === 'call' && e !== call)
      const server = serverLines.filter(
        (l) => l.db === DB && l.at >= epoch(sent) - 2 && l.at <= to + 2,
      )
      console.log(`  row ${r} committed at ${new Date(epoch(acked)).toISOString()}`)
      console.log(
        `cycle ${c} (${resetKind}) row ${r}: sent ${at(epoch(sent))} notified ${notify ? at(notify.at) : '–'} called ${call ? at(call.at) : '–'} (${call?.what} on client #${call?.client}${fresh ? ', NEW' : ''}) answered ${answer ? at(answer.at) : '–'} started ${start === undefined ? '–' : at(epoch(start))}`,
      )
      // The backends' system calls in the row's span (strace -tt: the time of day, UTC here).
      if (straceFile) {
        const day = new Date(epoch(acked)).toISOString().slice(0, 10)
        for (const l of readFileSync(straceFile, 'utf8').split('\n')) {
          const m = /^(\d+) (\d\d:\d\d:\d\d\.\d+) (.*)$/.exec(l)
          if (!m) continue
          const t = Date.parse(`${day}T${m[2]!.slice(0, 12)}Z`) + Number(`0.${m[2]!.slice(12)}`)
          if (t >= epoch(sent) - 1 && t <= to + 1)
            console.log(`    syscall ${at(t)} [${m[1]}] ${m[3]!.slice(0, 100)}`)
        }
      }
      for (const e of others) console.log(`    also: ${e.what} on #${e.client} at ${at(e.at)}`)
      for (const l of server)
        console.log(`    server ${at(l.at)} [${l.pid}] ${l.text.slice(0, 110)}`)
      const rec = byRow.get(`${resetKind} row ${r}`) ?? {}
      const put = (k: string, v: number | undefined) => {
        if (v !== undefined) rec[k] = [...(rec[k] ?? []), v]
      }
      put('notified', notify && notify.at - epoch(acked))
      put('claim trip', call && answer && answer.at - call.at)
      put('started', start === undefined ? undefined : start - acked)
      const durations = server.flatMap((l) => {
        const m = /duration: ([\d.]+) ms {2}(?:parse|bind|execute) outbox_claim/.exec(l.text)
        return m ? [Number(m[1])] : []
      })
      put('server claim', durations.length ? durations.reduce((a, b) => a + b, 0) : undefined)
      byRow.set(`${resetKind} row ${r}`, rec)
    }
    console.log(`  ${loadAverage()}`)
  }
  console.log(
    `\nmedians (ms) by row, ${cycles} cycles, row 1 ${firstAtMs / 1000} s after the start`,
  )
  console.table(
    [...byRow].map(([r, rec]) =>
      Object.fromEntries([
        ['reset, row', r],
        ...Object.entries(rec).map(([k, v]) => [k, median(v).toFixed(2)]),
      ]),
    ),
  )
} finally {
  onStart = () => {}
  await probe.close()
  await cluster.stop()
}
