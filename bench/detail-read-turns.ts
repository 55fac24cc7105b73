// `bun run bench/detail-read-turns.ts [rounds] [requests] [other binary ...]`: GET /v1/outbox/{id} of stored messages' rows and a template's, this build's binary against another's, taking turns.
//
// Each binary runs as an API process (`serve --role api`, the release image's environment, an
// HS256 secret) on a database it migrated itself, holding the same three pending rows: one enqueued
// with its message stored (enqueue_email), one so with a 1 MB text body and a 2 MB attachment
// (`large`: the answer's size is its bodies', which `rendered` may repeat), and one a template fills
// from its source row (the template read and rendered by the request since round 54's `rendered`),
// read with the admin's token and with one confined to the row's tenant (`template-tenant`: such a
// token is shown the template's recipients filled from the row alone). Each round, the binaries
// in turn (the order rotating round by round) answer `requests` GETs of one row, then of the other,
// one at a time over keep-alive, after 100 unmeasured ones each at the start; each batch has a token
// subject of its own (the API allows one 600 requests a minute: at most 500 a batch). Reported per
// binary and row: the answer's bytes, pooled p50 / p90 / p99 of a request's wall time (fetch → body
// read, not parsed), the
// statements one GET runs (pg_stat_statements, its database), the API process's CPU time per GET
// (user + system, /proc: less swayed by a loaded machine than wall time, in 10 ms ticks over a
// batch), and each other binary's per-round
// medians against the first's (ratio median and range): the two turns of a ratio ran seconds apart,
// which is all this shared machine lets one compare. The first binary is this checkout's build
// (TEST_BINARY: one made before); without others it runs alone.
import { SignJWT } from 'jose'
import pg from 'pg'
import { freePort } from '../src/embedded-postgres/free-port.ts'
import { compiledBinary } from '../test/support/binary.ts'
import { startBenchCluster } from './cluster.ts'
import { imageEnvInEffect, inImageEnv } from './image-env.ts'
import { loadAverage } from './load-average.ts'
import { median, percentile } from './percentiles.ts'
import { rotated } from './turns.ts'

const rounds = Number(process.argv[2] ?? 10)
const requests = Math.min(500, Number(process.argv[3] ?? 200))
const others = process.argv.slice(4)
const WARM = 100
const SECRET = `${crypto.randomUUID()}${crypto.randomUUID()}`
const KINDS = ['stored', 'large', 'template', 'template-tenant'] as const
type Kind = (typeof KINDS)[number]

await inImageEnv()
console.log(`before: ${loadAverage()}`)
const bins = [await compiledBinary(), ...others]
// The API allows a token's subject 600 requests a minute: each batch of GETs has a subject of its own.
let subjects = 0
const bearer = async (kind: Kind) => ({
  authorization: `Bearer ${await new SignJWT({
    scope: 'outbox:read',
    ...(kind === 'template-tenant' ? { tenant: 'default' } : {}),
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setSubject(`bench-${++subjects}`)
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(SECRET))}`,
})

interface Served {
  bin: string
  proc: ReturnType<typeof Bun.spawn>
  port: number
  db: pg.Client
  database: string
  ids: Record<Kind, string>
  ms: Record<Kind, number[][]>
  statements: Record<Kind, number[]>
  cpuMs: Record<Kind, number[]>
  bytes: Partial<Record<Kind, number>>
}

const cluster = await startBenchCluster()
const served: Served[] = []
try {
  for (const [i, bin] of bins.entries()) {
    const database = `detail_${i}`
    await cluster.createDatabase(database)
    const url = cluster.url(database)
    const port = await freePort()
    const env = {
      ...(await imageEnvInEffect()),
      PATH: process.env.PATH ?? '',
      DATABASE_URL: url,
      MAIL_FROM: 'Outbox <outbox@example.com>',
      API_JWT_SECRET: SECRET,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'error',
      MAIL_TRANSPORT: 'discard',
    }
    const m = Bun.spawn([bin, 'migrate'], { env, stdout: 'pipe', stderr: 'pipe' })
    if ((await m.exited) !== 0) throw new Error(`migrate: ${await new Response(m.stderr).text()}`)
    const db = new pg.Client({ connectionString: url, application_name: 'bench:detail' })
    await db.connect()
    await db.query(
      `insert into mailer.templates (name, subject, text_body, html_body, to_addresses, cc_addresses, reply_to)
       values ('inquiry', 'Inquiry from {{name}}', '{{name}} wrote: {{note}}', '<p>{{name}} &amp; {{note}}</p>',
               '{sales@example.com}', '{"{{name}} <{{email}}>"}', '{{email}}')`,
    )
    await db.query(
      `update mailer.templates set bcc_addresses = '{archive@example.com}' where name = 'inquiry'`,
    )
    const template = (
      await db.query(
        `insert into mailer.email_outbox (template, source_row) values ('inquiry', $1) returning id::text`,
        [
          JSON.stringify({
            name: 'Zoë',
            email: 'zoe@example.com',
            note: 'Call me back. '.repeat(40),
          }),
        ],
      )
    ).rows[0].id as string
    const stored = String(
      (
        await db.query(
          `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hi',
                    'text', repeat('Call me back. ', 40), 'html', '<p>' || repeat('Call me back. ', 40) || '</p>')) as id`,
        )
      ).rows[0].id,
    )
    const large = String(
      (
        await db.query(
          `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Scan',
                    'text', repeat('Call me back. ', 75000), 'attachments',
                    jsonb_build_array(jsonb_build_object('filename', 'scan.pdf', 'contentBase64', $1::text)))) as id`,
          [Buffer.alloc(2_000_000, 'scan').toString('base64')],
        )
      ).rows[0].id,
    )
    const proc = Bun.spawn([bin, 'serve', '--role', 'api'], {
      env,
      stdout: 'ignore',
      stderr: 'pipe',
    })
    for (const t0 = performance.now(); ; ) {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null)
      if (r?.status === 200) break
      if (proc.exitCode !== null)
        throw new Error(`serve exited: ${await new Response(proc.stderr as ReadableStream).text()}`)
      if (performance.now() - t0 > 20_000) throw new Error('not ready in 20 s')
      await Bun.sleep(5)
    }
    served.push({
      bin,
      proc,
      port,
      db,
      database,
      ids: { stored, large, template, 'template-tenant': template },
      ms: { stored: [], large: [], template: [], 'template-tenant': [] },
      statements: { stored: [], large: [], template: [], 'template-tenant': [] },
      cpuMs: { stored: [], large: [], template: [], 'template-tenant': [] },
      bytes: {},
    })
  }
  const get = async (s: Served, kind: Kind, headers: Record<string, string>) => {
    const t0 = performance.now()
    const r = await fetch(`http://127.0.0.1:${s.port}/v1/outbox/${s.ids[kind]}`, { headers })
    const body = await r.arrayBuffer()
    const ms = performance.now() - t0
    if (r.status !== 200)
      throw new Error(`GET ${kind}: ${r.status} ${new TextDecoder().decode(body)}`)
    s.bytes[kind] = body.byteLength
    return ms
  }
  // The API process's user + system time so far, in ms (/proc/PID/stat's utime and stime, 100 Hz ticks).
  const cpu = async (s: Served) => {
    const stat = await Bun.file(`/proc/${s.proc.pid}/stat`).text()
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  }
  // The GETs' statements in the binary's database (pg_stat_statements lives in the admin's).
  const calls = async (s: Served) =>
    Number(
      (
        await cluster.admin.query<{ n: string }>(
          `select coalesce(sum(s.calls), 0) as n from pg_stat_statements s
             join pg_database d on d.oid = s.dbid where d.datname = $1`,
          [s.database],
        )
      ).rows[0]!.n,
    )
  for (const s of served)
    for (const kind of KINDS) {
      const headers = await bearer(kind)
      for (let i = 0; i < WARM; i++) await get(s, kind, headers)
    }
  for (let r = 0; r < rounds; r++) {
    for (const s of rotated(served, r)) {
      for (const kind of KINDS) {
        const headers = await bearer(kind)
        const before = await calls(s)
        const cpuBefore = await cpu(s)
        const ms: number[] = []
        for (let i = 0; i < requests; i++) ms.push(await get(s, kind, headers))
        s.cpuMs[kind].push(((await cpu(s)) - cpuBefore) / requests)
        s.statements[kind].push((await calls(s)) - before)
        s.ms[kind].push(ms)
      }
    }
  }
} finally {
  for (const s of served) {
    s.proc.kill('SIGTERM')
    await s.proc.exited
    await s.db.end()
  }
  await cluster.stop()
}

console.log(`${rounds} rounds of ${requests} GETs per binary and row, taking turns`)
console.table(
  served.flatMap((s) =>
    KINDS.map((kind) => {
      const all = s.ms[kind].flat()
      return {
        binary: s.bin,
        row: kind,
        bytes: s.bytes[kind],
        'p50 / p90 / p99 ms': [50, 90, 99].map((p) => percentile(all, p).toFixed(2)).join(' / '),
        'round p50s ms': s.ms[kind].map((x) => median(x).toFixed(2)).join(' '),
        'statements/GET': (median(s.statements[kind]) / requests).toFixed(2),
        'CPU ms/GET': (s.cpuMs[kind].reduce((a, b) => a + b, 0) / s.cpuMs[kind].length).toFixed(2),
      }
    }),
  ),
)
const [first, ...rest] = served
for (const s of rest) {
  for (const kind of KINDS) {
    const ratios = s.ms[kind].map((x, i) => median(x) / median(first!.ms[kind][i]!))
    const p99s = s.ms[kind].map((x, i) => percentile(x, 99) / percentile(first!.ms[kind][i]!, 99))
    const cpus = s.cpuMs[kind].map((x, i) => x / first!.cpuMs[kind][i]!)
    console.log(
      `${kind}: ${s.bin} ÷ ${first!.bin}: CPU ${median(cpus).toFixed(2)}× (${Math.min(...cpus).toFixed(2)}–${Math.max(...cpus).toFixed(2)}); p50 ${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}), p99 ${median(p99s).toFixed(2)}× (${Math.min(...p99s).toFixed(2)}–${Math.max(...p99s).toFixed(2)}); ${ratios.filter((x) => x > 1).length} of ${ratios.length} rounds slower`,
    )
  }
}
console.log(`after: ${loadAverage()}`)
