// `bun run bench/enqueue-cpu.ts [rounds] [reps]`: the API process's CPU for one large POST /v1/outbox, per body kind, this checkout against another taking turns.
//
// Each system is this bench's server (bench/enqueue-cpu-server.ts) over a database of its own on
// one cluster, in a process of its own listening on HTTP: this checkout's source, and with
// ENQUEUE_BEFORE=<checkout> (a worktree of an earlier commit, node_modules linked) that one's too.
// Five bodies near what POST /v1/outbox takes: ASCII text, HTML (quotes and tags to escape),
// Cyrillic text as UTF-8 and the same \u-escaped (8 MB of JSON, as Python's json.dumps sends it),
// and a base64 attachment. Each round (default 8, after 2 unmeasured), body by body, the systems in
// turn (the first alternating), `reps` requests each (default 3), one at a time; measured: the
// server process's user + system CPU (/proc/<pid>/stat, every thread: the GC's too) per request,
// and Postgres's execution time of its statements (pg_stat_statements). Reported: medians over
// rounds, CPU per MB of body, and the median of the rounds' ratios this / before.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { median } from './percentiles.ts'

await inImageEnv()
const rounds = Number(process.argv[2] ?? 8)
const reps = Number(process.argv[3] ?? 3)
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(reps) || reps < 1) {
  console.error('usage: [ENQUEUE_BEFORE=<checkout>] bun run bench/enqueue-cpu.ts [rounds] [reps]')
  process.exit(2)
}
const WARMUP = 2
const here = resolve(import.meta.dir, '..')
const before = process.env.ENQUEUE_BEFORE ? resolve(process.env.ENQUEUE_BEFORE) : null

// Non-ASCII written \uXXXX, as Python's json.dumps writes it by default.
const escaped = (json: string) =>
  json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
const envelope = (message: Record<string, unknown>) =>
  JSON.stringify({ message: { to: 'ada@example.com', subject: 'Report', ...message } })
const cyrillic = 'Здравствуйте, как дела? '.repeat(57_000)
const bodies: Record<string, string> = {
  text: envelope({ text: 'The quick brown fox jumps over the lazy dog.\n'.repeat(78_000) }),
  html: envelope({ html: '<p class="row">Order <b>#42</b> &amp; "more"</p>\n'.repeat(72_000) }),
  'Cyrillic, UTF-8': envelope({ text: cyrillic }),
  'Cyrillic, \\u-escaped': escaped(envelope({ text: cyrillic })),
  'base64 attachment': envelope({
    text: 'Attached.',
    attachments: [
      { filename: 'report.pdf', contentBase64: randomBytes(2_600_000).toString('base64') },
    ],
  }),
}
const sizes = Object.fromEntries(
  Object.entries(bodies).map(([k, b]) => [k, new Uint8Array(Buffer.from(b))]),
)

// Each system's database, emptied after each body: every insert meets the same table.
const clients: pg.Client[] = []

interface System {
  name: string
  pid: number
  port: number
  kill(): void
}

const cluster = await startBenchCluster()
const systems: System[] = []
// utime + stime of the whole process, in ms (clock ticks of 10 ms).
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}
const pgMs = async (db: string) =>
  Number(
    (
      await cluster.admin.query<{ ms: number }>(
        `select coalesce(sum(total_exec_time), 0)::float8 as ms
           from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = $1`,
        [db],
      )
    ).rows[0]!.ms,
  )

try {
  for (const [name, checkout] of [['this', here], ...(before ? [['before', before]] : [])] as [
    string,
    string,
  ][]) {
    await cluster.createDatabase(name)
    await migrate({ url: cluster.url(name), log: silentLogger })
    const child = Bun.spawn(
      [process.execPath, 'run', `${here}/bench/enqueue-cpu-server.ts`, checkout, cluster.url(name)],
      { stdout: 'pipe', stderr: 'inherit' },
    )
    const reader = child.stdout.getReader()
    let out = ''
    while (!out.includes('\n')) {
      const { done, value } = await reader.read()
      if (done) throw new Error(`the ${name} server ended before listening`)
      out += new TextDecoder().decode(value)
    }
    const c = new pg.Client({ connectionString: cluster.probeUrl(name) })
    await c.connect()
    clients.push(c)
    systems.push({ name, pid: child.pid, port: Number(out.trim()), kill: () => child.kill() })
  }

  const record = (into: Record<string, number[]>, key: string, value: number) => {
    into[key] = [...(into[key] ?? []), value]
  }
  const cpu: Record<string, number[]> = {}
  const server: Record<string, number[]> = {}
  for (let round = 0; round < rounds + WARMUP; round++) {
    for (const [kind, body] of Object.entries(sizes)) {
      const turn = round % 2 ? [...systems].reverse() : systems
      for (const s of turn) {
        const cpu0 = cpuMs(s.pid)
        const pg0 = await pgMs(s.name)
        for (let i = 0; i < reps; i++) {
          const res = await fetch(`http://127.0.0.1:${s.port}/v1/outbox`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          })
          const answer = await res.text()
          if (res.status !== 201) throw new Error(`${s.name} ${kind}: ${res.status} ${answer}`)
        }
        const pg1 = await pgMs(s.name)
        if (round >= WARMUP) {
          record(cpu, `${kind}|${s.name}`, (cpuMs(s.pid) - cpu0) / reps)
          record(server, `${kind}|${s.name}`, (pg1 - pg0) / reps)
        }
      }
      for (const c of clients) await c.query('truncate mailer.email_attempts, mailer.email_outbox')
    }
  }

  console.log(
    `${rounds} rounds of ${reps} requests per body and system${before ? `; before = ${before}` : ''}`,
  )
  for (const kind of Object.keys(bodies)) {
    const mb = sizes[kind]!.byteLength / 1e6
    const cells = systems.map((s) => {
      const c = median(cpu[`${kind}|${s.name}`]!)
      const p = median(server[`${kind}|${s.name}`]!)
      return `${s.name} ${c.toFixed(0)} ms (${(c / mb).toFixed(0)} ms/MB), Postgres ${p.toFixed(0)} ms`
    })
    const ratio = before
      ? `   this/before ${median(
          cpu[`${kind}|this`]!.map((c, i) => c / cpu[`${kind}|before`]![i]!),
        ).toFixed(2)}`
      : ''
    console.log(`${kind.padEnd(22)} ${mb.toFixed(2)} MB   ${cells.join('   ')}${ratio}`)
  }
} finally {
  for (const s of systems) s.kill()
  for (const c of clients) await c.end()
  await cluster.stop()
}
