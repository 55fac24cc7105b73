// `bun run bench/base64-lines-cost.ts [rounds]`: what enqueue's checks cost a 3 MB attachment in one line of base64 and in 76-character lines, before and after 0032.
//
// Two databases on one cluster: one migrated up to 0031 (`before`), one to the latest (`after`).
// Each round (default 15, after 2 unmeasured) times mailer.normalize_message in each database in
// turn, inside the server (a PL/pgSQL loop around the call, the message held in a variable: no
// client transfer and no JSON parse, which are the same for both): 3 calls for each attachment
// shape (3,000,000 random bytes as base64, and 3,000,001 ending in "==", in one line and in lines
// of 76 ended by CRLF or LF), and one statement normalising 20,000 small messages (two recipients,
// html, a header). Reported: the median per call (per statement for the small ones) over every
// round, the spread of the round medians, and the median over rounds of after / before (the two
// measured side by side in each round).
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { migrations } from '../src/db/migrations.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'

const rounds = Number(process.argv[2] ?? 15)
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error('usage: bun run bench/base64-lines-cost.ts [rounds ≥ 1]')
  process.exit(2)
}
const WARMUP = 2
const BEFORE = migrations.findIndex((m) => m.version === 31) + 1

// 3,000,000 bytes: base64 without padding; one more byte: ending in "==".
const base64Of = (bytes: number) => randomBytes(bytes).toString('base64')
const inLines = (b64: string, eol: string) => `${(b64.match(/.{1,76}/g) ?? []).join(eol)}${eol}`
const withAttachment = (contentBase64: string) => ({
  to: 'rcpt@example.com',
  subject: 'Report',
  text: 'Attached.',
  attachments: [{ filename: 'report.pdf', contentType: 'application/pdf', contentBase64 }],
})
const even = base64Of(3_000_000)
const padded = base64Of(3_000_001)
const shapes = {
  'one line': withAttachment(even),
  'one line, ==': withAttachment(padded),
  'lines, CRLF': withAttachment(inLines(even, '\r\n')),
  'lines, CRLF, ==': withAttachment(inLines(padded, '\r\n')),
  'lines, LF, ==': withAttachment(inLines(padded, '\n')),
}
const SMALL = `select count(mailer.normalize_message(jsonb_build_object(
    'to', jsonb_build_array('r' || g || '@example.com', jsonb_build_object('address', 'c' || g || '@example.com', 'name', 'C ' || g)),
    'subject', 'Order ' || g, 'html', '<p>Thanks for order ' || g || '</p>', 'headers', jsonb_build_object('X-Order', g::text))))
  from generate_series(1, 20000) g`

const cluster = await startBenchCluster()
const systems: Record<string, pg.Client> = {}
for (const [name, upTo] of [
  ['before', BEFORE],
  ['after', migrations.length],
] as const) {
  await cluster.createDatabase(name)
  await migrate({
    url: cluster.url(name),
    log: silentLogger,
    migrations: migrations.slice(0, upTo),
  })
  const c = new pg.Client({ connectionString: cluster.url(name), application_name: 'bench' })
  await c.connect()
  await c.query(`create function public.normalize_ms(m jsonb, n int) returns float8[] language plpgsql as $$
    declare t0 timestamptz; out float8[] := '{}';
    begin
      for i in 1..n loop
        t0 := clock_timestamp();
        perform mailer.normalize_message(m);
        out := out || extract(epoch from clock_timestamp() - t0)::float8 * 1000;
      end loop;
      return out;
    end $$`)
  systems[name] = c
}

const calls: Record<string, number[]> = {}
const roundMedians: Record<string, number[]> = {}
const record = (key: string, ms: number[], round: number) => {
  if (round < WARMUP) return
  calls[key] = [...(calls[key] ?? []), ...ms]
  roundMedians[key] = [...(roundMedians[key] ?? []), median(ms)]
}
// Shape by shape, the two databases in turn (the first one alternating), so that what the
// machine does meanwhile falls on both alike.
const inTurn = (round: number) =>
  round % 2 ? Object.entries(systems).reverse() : Object.entries(systems)
for (let round = 0; round < rounds + WARMUP; round++) {
  for (const [shape, message] of Object.entries(shapes)) {
    const json = JSON.stringify(message)
    for (const [name, c] of inTurn(round)) {
      const r = await c.query<{ ms: number[] }>('select public.normalize_ms($1::jsonb, 3) as ms', [
        json,
      ])
      record(`${shape}|${name}`, r.rows[0]!.ms, round)
    }
  }
  for (const [name, c] of inTurn(round)) {
    const t0 = performance.now()
    await c.query(SMALL)
    record(`20,000 small messages|${name}`, [performance.now() - t0], round)
  }
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1))
console.log(`${rounds} rounds; before = migrations up to 0031, after = all ${migrations.length}`)
console.log(`${cluster.version.split(' ').slice(0, 2).join(' ')}`)
for (const shape of [...Object.keys(shapes), '20,000 small messages']) {
  const cells = ['before', 'after'].map((name) => {
    const key = `${shape}|${name}`
    const rm = [...(roundMedians[key] ?? [])].sort((a, b) => a - b)
    return `${name} ${fmt(median(calls[key] ?? []))} ms (rounds ${fmt(rm[0] ?? 0)}–${fmt(rm.at(-1) ?? 0)})`
  })
  // The round by round ratio: after / before, measured side by side.
  const b = roundMedians[`${shape}|before`] ?? []
  const ratio = median((roundMedians[`${shape}|after`] ?? []).map((a, i) => a / b[i]!))
  console.log(`${shape.padEnd(22)} ${cells.join('   ')}   after/before ${ratio.toFixed(2)}`)
}
for (const c of Object.values(systems)) await c.end()
await cluster.stop()
