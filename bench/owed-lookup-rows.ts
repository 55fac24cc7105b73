// `bun run bench/owed-lookup-rows.ts [rows] [seconds]`: what interrupted sends whose lookup waits for a past sender mailbox's owed probe cost a worker while that probe is out.
//
// A rolling deploy changed MAIL_FROM from OLD to NEW: OLD is noted as a past sender, its probe owed
// and out (a row of a still-running old-release worker, sending, its deadline and lease 10 minutes
// off: written by SQL, as no old worker runs here). `rows` rows (default 200) from NEW carry the
// mark of a send interrupted 2 minutes ago. A worker of NEW (as `serve` wires Graph, lookups on,
// WORKER_CONCURRENCY 10) claims each, looks it up in NEW (not there), and may not ask OLD while its
// probe is owed: the row goes back, mailbox_paused: due 1 s later before sql/0112, due at the
// probe's end since (once per row: with rows few enough to be given back within the warm-up, the
// window counts the re-claims alone; regiven counts them apart). Counts over `seconds` (default 10, after 3 s of warm-up): the
// worker's claims and rows claimed, and Graph lookups. Runs unchanged against an older tree (copy it
// there).
import type { TestEngine } from '../test/support/engine.ts'
import { startFakeGraph } from '../test/support/fake-graph.ts'
import { graphWorker } from '../test/support/graph-worker.ts'
import { startBenchTestDb } from './bench-test-db.ts'

const rows = Number(process.argv[2] ?? 200)
const seconds = Number(process.argv[3] ?? 10)
const OLD = 'outbox@example.com'
const NEW = 'outbox-next@example.com'
const db = await startBenchTestDb('outbox_owed_lookups')
const { probePool, t } = db
const fake = await startFakeGraph({
  clientSecret: 'right',
  concurrencyLimit: 1000,
  mailboxes: [OLD, NEW],
})
let engine: TestEngine | null = null
const one = async <T>(q: string, v: unknown[] = []) => (await probePool.query(q, v)).rows[0] as T
try {
  await probePool.query(
    `with probe as (
       insert into mailer.email_outbox (message, status, lease_token, lease_expires_at, send_started_at, send_deadline_at)
       values (jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'rcpt@example.com')),
                                  'subject', 'Hello', 'text', 'Hi'),
               'sending', gen_random_uuid(), now() + interval '10 minutes', now(), now() + interval '10 minutes')
       returning id
     ), w as (
       insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
       values ('old-release:1:abcdef', 'old-release', 1, '0.9.0', $1, 600)
     ), s as (
       insert into mailer.sender_mailboxes (mailbox) values ($1)
     )
     insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, probe_owed, probe_id)
     select $1, now() - interval '1 minute', interval '0', true, id from probe`,
    [OLD],
  )
  await probePool.query(
    `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi', 'from', $1::text))
       from generate_series(1, $2::int)`,
    [NEW, rows],
  )
  await probePool.query(
    `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where status = 'pending'`,
  )
  engine = graphWorker(t, fake, { workerId: 'worker-new', mailFrom: NEW, graceSeconds: 30 })
  await engine.start()
  await Bun.sleep(3_000)
  const claimed = () =>
    engine!.events.events.flatMap((e) => (e.type === 'claimed' ? [e.count] : []))
  const lookups = () => fake.requests.filter((r) => r.kind === 'lookup').length
  const c0 = claimed()
  const e0 = engine.events.events.length
  const l0 = lookups()
  const t0 = performance.now()
  await Bun.sleep(seconds * 1000)
  const s = (performance.now() - t0) / 1000
  const c1 = claimed().slice(c0.length)
  // Rows given back again (settled before): the re-claims, whatever the first pass still takes.
  const seen = new Set<string>()
  let again = 0
  for (const [i, e] of engine.events.events.entries()) {
    if (e.type !== 'settled') continue
    if (seen.has(e.id) && i >= e0) again++
    seen.add(e.id)
  }
  const l1 = lookups()
  const state = await one<{ owed: boolean; waiting: string }>(
    `select (select probe_owed from mailer.mailbox_pacing where mailbox = $1) as owed,
            (select count(*) from mailer.email_outbox where status = 'pending' and last_error_code = 'mailbox_paused') as waiting`,
    [OLD],
  )
  const per = (n: number) => (n / s).toFixed(1)
  const rowsClaimed = c1.reduce((a, b) => a + b, 0)
  console.log(
    `[owed-lookup-rows] rows=${rows} seconds=${s.toFixed(1)} probe_owed=${state.owed} waiting=${state.waiting} ` +
      `claims/s=${per(c1.length)} rows_claimed/s=${per(rowsClaimed)} lookups/s=${per(l1 - l0)} regiven/s=${per(again)}`,
  )
} finally {
  await engine?.stop()
  await fake.stop()
  await db.close()
}
