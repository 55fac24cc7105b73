// `bun run bench/rolling-owed-rows.ts [rows] [seconds]`: what rows naming the old MAIL_FROM cost a worker of the new one while the old mailbox's probe is owed (a rolling deploy that changes MAIL_FROM).
//
// The old release's worker (MAIL_FROM OLD) meets Graph's throttle: OLD paused, its probe owed. Then
// `rows` rows (default 1,000) naming OLD come due with the pause over, and the old worker's probe,
// one of them, goes out and hangs (Graph holds every request to OLD unanswered): the probe stays
// owed. A worker of the new release (MAIL_FROM NEW, as `serve` wires Graph, WORKER_CONCURRENCY 10)
// starts: for it OLD is a sender like any other, so it claims those rows and its gate gives each
// back (mailbox_paused) while the probe is owed: due 1 s later before sql/0092, due at the probe's
// end since (once per row: with rows few enough to be given back within the warm-up, the window
// counts the re-claims alone). Counts over `seconds` (default 10, after 2 s of warm-up): the new worker's claims and rows claimed, every statement of the workers
// (pg_stat_statements; the driver's own, as bench_probe, left out) and the history rows written (a
// row's give-back is recorded once per pause: that count ends when every row has been given back). Runs unchanged against an older tree (copy it there).
//
// `bun run bench/rolling-owed-rows.ts [rows] [seconds] none-out`: the probe owed but none out (the old
// release's machine live, its registry beat fresh, but claiming nothing meanwhile: no old engine
// runs, the pause over): the new worker gives each row back due 1 s later (owedProbeEndsInMs null),
// so what a row costs while no probe is out, per second of the window.
import { enqueue, type TestEngine } from '../test/support/engine.ts'
import { pollUntil } from '../test/support/events.ts'
import { startFakeGraph } from '../test/support/fake-graph.ts'
import { graphTransport, startTransportWorker } from '../test/support/transport-worker.ts'
import { startBenchTestDb } from './bench-test-db.ts'

const rows = Number(process.argv[2] ?? 1000)
const seconds = Number(process.argv[3] ?? 10)
const noneOut = process.argv[4] === 'none-out'
const OLD = 'outbox@example.com'
const NEW = 'outbox-next@example.com'
const db = await startBenchTestDb('outbox_rolling_owed')
const { cluster, probePool, t } = db
const name = 'outbox_rolling_owed'
const fake = await startFakeGraph({
  clientSecret: 'right',
  concurrencyLimit: 1000,
  mailboxes: [OLD, NEW],
})
const engines: TestEngine[] = []
const one = async <T>(q: string, v: unknown[] = []) => (await probePool.query(q, v)).rows[0] as T
/** The old worker throttled, then its probe (a row naming OLD) out and hanging (the default mode). */
async function owedAndOut(worker: (mailFrom: string, id: string) => Promise<TestEngine>) {
  const old = await worker(OLD, 'worker-old')
  await pollUntil(
    async () =>
      (
        await one<{ ok: boolean }>(
          `select exists (select from mailer.mailbox_pacing where mailbox = $1 and probe_owed
                           and next_at > now() + interval '1 minute')
                  and not exists (select from mailer.email_outbox where status = 'sending') as ok`,
          [OLD],
        )
      ).ok || undefined,
    60_000,
  )
  await probePool.query(
    `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi', 'from', $1::text),
                                 jsonb_build_object('sendAt', now() + interval '1 day'))
       from generate_series(1, $2::int)`,
    [OLD, rows],
  )
  fake.setFaults({ pickSendMail: (m) => (m === OLD ? 'hang' : undefined) })
  await probePool.query(
    `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
     update mailer.email_outbox set send_at = now() - interval '1 minute' where status = 'pending' and send_at > now()`,
    [OLD],
  )
  old.drainer.wake()
  await pollUntil(
    async () =>
      (
        await one<{ ok: boolean }>(
          `select exists (select from mailer.mailbox_pacing where mailbox = $1 and probe_owed and probe_id is not null) as ok`,
          [OLD],
        )
      ).ok || undefined,
    60_000,
  )
}

/** OLD's probe owed, its pause over, none out: the old release's machine noted live, claiming nothing. */
async function owedNoneOut() {
  await probePool.query(
    `with w as (insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
                values ('old-release:1:abcdef', 'old-release', 1, '0.9.0', $1, 600))
     insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)
     on conflict (mailbox) do update set next_at = excluded.next_at, probe_owed = true, probe_id = null`,
    [OLD],
  )
  await probePool.query(
    `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi', 'from', $1::text),
                                 '{}'::jsonb)
       from generate_series(1, $2::int)`,
    [OLD, rows],
  )
}

try {
  fake.setFaults({
    pickSendMail: (m) =>
      m === OLD ? { status: 429, code: 'ApplicationThrottled', retryAfter: '300' } : undefined,
  })
  await enqueue(t)
  const worker = (mailFrom: string, id: string) =>
    startTransportWorker(t, engines, graphTransport(fake, mailFrom), {
      workerId: id,
      mailFrom,
      sendTimeoutMs: 600_000,
    })
  if (noneOut) await owedNoneOut()
  else await owedAndOut(worker)
  const fresh = await worker(NEW, 'worker-new')
  fresh.drainer.wake()
  await Bun.sleep(2_000)
  const history = async () =>
    Number((await one<{ n: string }>('select count(*) as n from mailer.email_attempts')).n)
  await cluster.admin.query('select pg_stat_statements_reset()')
  const claimed = () => fresh.events.events.flatMap((e) => (e.type === 'claimed' ? [e.count] : []))
  const c0 = claimed()
  const h0 = await history()
  const t0 = performance.now()
  await Bun.sleep(seconds * 1000)
  const s = (performance.now() - t0) / 1000
  const c1 = claimed().slice(c0.length)
  const h1 = await history()
  const owed = await one<{ owed: boolean }>(
    'select probe_owed as owed from mailer.mailbox_pacing where mailbox = $1',
    [OLD],
  )
  const stmts = await cluster.admin.query<{ calls: string; q: string }>(
    `select sum(s.calls)::bigint as calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) as q
       from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
      where d.datname = $1 and u.rolname <> 'bench_probe' group by 2 order by 1 desc`,
    [name],
  )
  const calls = stmts.rows.reduce((n, r) => n + Number(r.calls), 0)
  const per = (n: number) => (n / s).toFixed(1)
  const rowsClaimed = c1.reduce((a, b) => a + b, 0)
  console.log(
    `[rolling-owed-rows] rows=${rows} seconds=${s.toFixed(1)} probe_owed=${owed.owed} ` +
      `claims/s=${per(c1.length)} rows_claimed/s=${per(rowsClaimed)} statements/s=${per(calls)} ` +
      `history_rows/s=${per(h1 - h0)}`,
  )
  console.table(stmts.rows.slice(0, 10))
} finally {
  for (const e of engines.splice(0)) await e.stop()
  await fake.stop()
  await db.close()
}
