// `bun run bench/probe-wait.ts [others]`: what a claim reads while a MAIL_FROM pause's probe is owed and its row lies behind other senders' future rows.
//
// Fills `others` pending rows (default 100,000) naming a sender of their own (50 of them),
// scheduled an hour out, and one row of MAIL_FROM's (no sender) two hours out: after all of them
// in claim order. The pause is over and, where the schema has it (0062), its probe owed. Then runs
// the waiting worker's claim, mailer.claim_past_paused, with EXPLAIN (ANALYZE, BUFFERS) (the
// function's own statements counted in its buffers) six times, the first unmeasured, each
// committed as a claim is (it claims nothing: none of the rows is due), and the probe's search for
// MAIL_FROM's first future row alone with its plan (0057's statement, the function's settings).
// Runs unchanged against an older tree (copy it there): only sql/ differs.
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { openProbe } from './systems/probe.ts'

const others = Number(process.argv[2] ?? 100_000)
const MAIL_FROM = 'sender@example.com'
const cluster = await startBenchCluster()
const name = 'outbox_probe_wait'
await cluster.createDatabase(name)
await migrate({ url: cluster.url(name), log: silentLogger })
const probe = await openProbe(cluster.url(name))
type Plan = {
  Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number }
  'Execution Time': number
}
try {
  await probe.query(
    `select mailer.enqueue_email(jsonb_build_object('from', 'own' || (i % 50) || '@example.com', 'to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'x'),
                                 jsonb_build_object('sendAt', now() + interval '1 hour' + i * interval '1 ms'))
       from generate_series(1, $1::int) i`,
    [others],
  )
  await probe.query(
    `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hi","text":"x"}'::jsonb,
                                 jsonb_build_object('sendAt', now() + interval '2 hours'))`,
  )
  const [owedColumn] = await probe.query<{ n: number }>(
    `select count(*)::int as n from information_schema.columns
      where table_schema = 'mailer' and table_name = 'mailbox_pacing' and column_name = 'probe_owed'`,
  )
  await probe.query(
    owedColumn!.n > 0
      ? `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`
      : `insert into mailer.mailbox_pacing (mailbox, next_at) values ($1, now() - interval '1 minute')`,
    [MAIL_FROM],
  )
  await probe.query('vacuum analyze mailer.email_outbox')
  const claim = `select mailer.claim_past_paused(10, 'bench', gen_random_uuid(), 60, false, 5, $1, 5000)`
  const runs: Plan[] = []
  for (let i = 0; i < 6; i++) {
    const [r] = await probe.query<{ 'QUERY PLAN': Plan[] }>(
      `explain (analyze, buffers, format json) ${claim}`,
      [MAIL_FROM],
    )
    runs.push(r!['QUERY PLAN'][0]!)
  }
  const [answer] = await probe.query<{ claim_past_paused: unknown }>(claim, [MAIL_FROM])
  await probe.query('begin')
  await probe.query('set local enable_seqscan = off')
  await probe.query('set local enable_bitmapscan = off')
  const search = await probe.query<{ 'QUERY PLAN': string }>(
    `explain (analyze, buffers, costs off, timing off, summary off)
     select f.send_at from mailer.email_outbox f
      where f.status = 'pending' and f.priority = 0 and f.send_at > now() and f.sender_key is null
      order by f.send_at limit 1`,
  )
  await probe.query('rollback')
  const ms = (p: Plan) => Math.round(p['Execution Time'] * 100) / 100
  const buffers = (p: Plan) => p.Plan['Shared Hit Blocks'] + p.Plan['Shared Read Blocks']
  console.log(
    JSON.stringify({
      others,
      probeOwedColumn: owedColumn!.n > 0,
      firstClaim: { ms: ms(runs[0]!), buffers: buffers(runs[0]!) },
      claimMsMedian: median(runs.slice(1).map(ms)),
      claimMsEach: runs.slice(1).map(ms),
      claimBuffersEach: runs.slice(1).map(buffers),
      answer: answer?.claim_past_paused,
    }),
  )
  console.log(search.map((r) => r['QUERY PLAN']).join('\n'))
} finally {
  await probe.close()
  await cluster.stop()
}
