// `bun run bench/paused-mailbox.ts [rows] [cycles] [rate]`: what a paused sender mailbox's waiting rows cost the database, per pause cycle and per row.
//
// Graph refuses MAIL_FROM (404 ErrorInvalidUser): the first send pauses the mailbox for 5 minutes
// (SENDER_MAILBOX_PAUSE_MS), and every other row due meanwhile is claimed and given back unsent
// (mailbox_paused) to the pause's end (before 0039; since, left unclaimed). The worker as `serve`
// wires Graph (shared send gate, MAILBOX_RATE_PER_MINUTE `rate`, default 30; WORKER_CONCURRENCY 10)
// meets `rows` such rows; each of `cycles` cycles then ends the pause, as its 5 minutes passing
// would (rows given back due, the mailbox's pause over: the driver's own updates, left out), wakes
// the worker, and waits until it is idle again: the mailbox paused anew by a probe that met the
// 404, nothing claimed or in flight, and its last claim empty. Counts the worker's statements
// (pg_stat_statements; the driver's own as bench_probe are left out), the cluster's WAL, the
// outbox's row updates, the history rows and Graph's requests, per cycle. Runs unchanged against
// an older tree (copy it there): only src/ differs.
import pg from 'pg'
import { systemClock } from '../src/clock.ts'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { claimBatch } from '../src/outbox/claim.ts'
import { createPgSendGate } from '../src/outbox/pg-send-gate.ts'
import { createGraphTransport } from '../src/transport/graph-transport.ts'
import type { TestDb } from '../test/support/db.ts'
import { createTestEngine, enqueue } from '../test/support/engine.ts'
import { pollUntil } from '../test/support/events.ts'
import {
  generateTestCertificate,
  graphConfigFor,
  startFakeGraph,
} from '../test/support/fake-graph.ts'
import { startBenchCluster } from './cluster.ts'

const rows = Number(process.argv[2] ?? 2000)
const cycles = Number(process.argv[3] ?? 5)
const rate = Number(process.argv[4] ?? 30)
const cluster = await startBenchCluster()
const name = 'outbox_paused'
await cluster.createDatabase(name)
await migrate({ url: cluster.url(name), log: silentLogger })
const handle = openDb({ name: 'bench', url: cluster.url(name), log: silentLogger })
const probePool = new pg.Pool({ connectionString: cluster.probeUrl(name), max: 2 })
const t = { ...handle, url: cluster.url(name), pool: probePool } as unknown as TestDb
const cert = await generateTestCertificate()
// Graph knows another mailbox only: MAIL_FROM's sends answer 404 ErrorInvalidUser.
const fake = await startFakeGraph({
  certificates: [cert.certPem],
  mailboxes: ['someone-else@example.com'],
})
// The fake records no request it answers 404 for the mailbox: counted here.
let graphSends = 0
const countedFetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
  if (String(input instanceof Request ? input.url : input).endsWith('/sendMail')) graphSends++
  return fetch(input, init)
}) as typeof fetch
const transport = createGraphTransport(
  graphConfigFor(fake, {
    certificate: cert.certPem,
    privateKey: cert.keyPem,
    mailboxLookup: false,
  }),
  'sender@example.com',
  { fetch: countedFetch, clock: systemClock, log: silentLogger },
)
const gate = createPgSendGate({
  db: t.statements.db,
  clock: systemClock,
  log: silentLogger,
  holder: 'bench-worker',
  maxConcurrency: 4,
  ratePerMinute: rate,
  slotTtlMs: 20_000,
})
// The worker's claims, counted: in flight, and whether the last one took anything.
let claiming = 0
let lastClaimTook = -1
const countedClaim: typeof claimBatch = async (db, p) => {
  claiming++
  try {
    const c = await claimBatch(db, p)
    lastClaimTook = c.leases.length
    return c
  } finally {
    claiming--
  }
}
const engine = createTestEngine(t, {
  config: { pollIntervalSeconds: 30 },
  deps: {
    claim: countedClaim,
    sender: transport.sender,
    gate,
    sendBlockedForMs: transport.blockedForMs,
    sendTimeoutMs: 5_000,
  },
})
const counts = async () =>
  (
    await probePool.query<{ sending: number; paused: number }>(
      `select (select count(*)::int from mailer.email_outbox where status = 'sending') as sending,
              (select count(*)::int from mailer.mailbox_pacing
                where mailbox not like 'queue %' and next_at > now() + interval '1 minute') as paused`,
    )
  ).rows[0]!
/** Paused anew, every row back, no claim in flight and the last one empty: the cycle is over. */
const settled = () =>
  pollUntil(async () => {
    if (engine.drainer.status().inFlight > 0 || claiming > 0 || lastClaimTook !== 0)
      return undefined
    const c = await counts()
    return c.sending === 0 && c.paused === 1 && claiming === 0 && lastClaimTook === 0
      ? true
      : undefined
  }, 300_000)
try {
  for (let i = 0; i < rows; i++) await enqueue(t)
  await engine.start()
  // The first cycle: one send meets the 404 and pauses the mailbox; the rest go back to its end.
  await settled()
  const sends = graphSends
  const lsn = async () =>
    (await cluster.admin.query<{ l: string }>('select pg_current_wal_lsn()::text as l')).rows[0]!.l
  const updates = async () =>
    Number(
      (
        await probePool.query<{ n: string }>(
          `select n_tup_upd as n from pg_stat_user_tables where relid = 'mailer.email_outbox'::regclass`,
        )
      ).rows[0]!.n,
    )
  const history0 = Number(
    (await probePool.query<{ n: string }>('select count(*) as n from mailer.email_attempts'))
      .rows[0]!.n,
  )
  await cluster.admin.query('select pg_stat_statements_reset()')
  const from = await lsn()
  const upd0 = await updates()
  const t0 = performance.now()
  // The driver's own update (the pause's end brought forward) is measured apart and left out.
  let ownWal = 0
  let ownUpdates = 0
  for (let k = 1; k <= cycles; k++) {
    // The pause's end: the rows given back for it due, and the pause itself over.
    const before = await lsn()
    const { rowCount } = await probePool.query(
      `update mailer.email_outbox set send_at = now() where status = 'pending' and send_at > now()`,
    )
    const { rowCount: pacing } = await probePool.query(
      `update mailer.mailbox_pacing set next_at = now() where mailbox not like 'queue %' and next_at > now()`,
    )
    const after = await lsn()
    ownWal += Number(
      (
        await cluster.admin.query<{ b: string }>(
          'select pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::bigint as b',
          [before, after],
        )
      ).rows[0]!.b,
    )
    ownUpdates += rowCount ?? 0
    if ((pacing ?? 0) !== 1) throw new Error(`expected one paused mailbox, found ${pacing}`)
    lastClaimTook = -1
    engine.drainer.wake()
    await settled()
  }
  const ms = performance.now() - t0
  const to = await lsn()
  // pg_stat_user_tables lags by up to the stats flush: the worker's backends, idle now, flush
  // theirs within 10 s (PGSTAT_IDLE_INTERVAL); a short run would otherwise read none of it.
  await probePool.query('select pg_stat_force_next_flush()').catch(() => {})
  await Bun.sleep(11_000)
  const upd = (await updates()) - upd0 - ownUpdates
  const stmts = await cluster.admin.query<{ calls: string; q: string }>(
    `select sum(s.calls)::bigint as calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) as q
       from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
      where d.datname = $1 and u.rolname <> 'bench_probe' group by 2 order by 1 desc`,
    [name],
  )
  const walAll = await cluster.admin.query<{ b: string }>(
    'select pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::bigint as b',
    [from, to],
  )
  const wal = { rows: [{ b: String(Number(walAll.rows[0]!.b) - ownWal) }] }
  const history =
    Number(
      (await probePool.query<{ n: string }>('select count(*) as n from mailer.email_attempts'))
        .rows[0]!.n,
    ) - history0
  const calls = stmts.rows.reduce((s, r) => s + Number(r.calls), 0)
  const per = (n: number, d: number) => (n / d).toFixed(2)
  const sendsAfter = graphSends - sends
  console.log(
    `[paused-mailbox] rows=${rows} cycles=${cycles} rate=${rate} graph_sends=${sends}+${sendsAfter} ` +
      `statements=${calls} (${per(calls, cycles)}/cycle, ${per(calls, rows * cycles)}/row/cycle) ` +
      `row_updates=${upd} (${per(upd, rows * cycles)}/row/cycle) history=+${history} ` +
      `wal_bytes=${wal.rows[0]!.b} (${per(Number(wal.rows[0]!.b), cycles)}/cycle, ${per(Number(wal.rows[0]!.b), rows * cycles)}/row/cycle) ` +
      `ms/cycle=${per(ms, cycles)}`,
  )
  console.table(stmts.rows.slice(0, 12))
} finally {
  await engine.stop()
  await fake.stop()
  await handle.close()
  await probePool.end()
  await cluster.stop()
}
