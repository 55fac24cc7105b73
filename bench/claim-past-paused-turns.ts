// `bun run bench/claim-past-paused-turns.ts [rounds] [rows]`: claim_past_paused against earlier texts of it, taking turns, in each of its paths.
//
// 0076 restated mailer.claim_past_paused over small `language sql` pieces; 0082 added the row naming
// MAIL_FROM's address as the probe where the claim would wait; 0083 moved the probe's choice into
// pieces. The migrated function, and 0082's and 0076's texts installed afresh as
// mailer.claim_past_paused_0082 and _0076 (a function's catalog row replaced by every restatement
// since 0039 is measured beside a fresh one), all in one database, so they read the same tables and
// indexes. `rows` pending rows (default 20,000) name a sender of their own (50 of them), due now; as
// many again scheduled an hour out; one row of MAIL_FROM's (no sender key) two hours out. Each claim
// (10 rows) runs with EXPLAIN (ANALYZE, BUFFERS) in a transaction rolled back after it, so each finds
// the same rows, the variants in a rotating order round by round, in each path: MAIL_FROM paused
// (the standing claim of keyed rows); its probe owed and due (the row moved to now() in the
// transaction); owed, a row naming MAIL_FROM's address due after every other keyed row (0082's
// probe; 0076 waits); owed and waiting, searched (no due time kept; 0082's lookup of a row naming
// the address finds none); owed and waiting, the kept due time checked; the same within a second
// of the last search (0103: a full claim skips the search). Reports per path and
// variant the median execution time and shared buffers per claim, and whether the answers agree
// with 0082's (lease ids, pause and probe present). Then the two probe lookups alone, EXPLAIN
// (ANALYZE, BUFFERS) under the function's settings, in the paths where each reads farthest.
import { readFileSync } from 'node:fs'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { openProbe } from './systems/probe.ts'
import { rotated } from './turns.ts'

const rounds = Number(process.argv[2] ?? 20)
const rows = Number(process.argv[3] ?? 20_000)
const MAIL_FROM = 'sender@example.com'
const VARIANTS = ['claim_past_paused', 'claim_past_paused_0082', 'claim_past_paused_0076'] as const
// Each path: what the transaction sets before the claim.
const PATHS: Record<string, string[]> = {
  paused: [
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() + interval '5 minutes', true)`,
  ],
  'probe due': [
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
    `update mailer.email_outbox set send_at = now() - interval '1 second' where sender_key is null and status = 'pending'`,
  ],
  'address probe due': [
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
    `select mailer.enqueue_email(jsonb_build_object('from', $1::text, 'to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'x'),
                                 jsonb_build_object('sendAt', now() - interval '1 second'))`,
  ],
  'waiting, searched': [
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
  ],
  'waiting, kept': [
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed, probe_due_at)
     select $1, now() - interval '1 minute', true, o.send_at
       from mailer.email_outbox o where o.sender_key is null and o.status = 'pending'`,
  ],
  // 0103: a full claim within a second of the last search skips it (the older texts search).
  'waiting, kept, searched in the second': [
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed, probe_due_at, probe_searched_at)
     select $1, now() - interval '1 minute', true, o.send_at, now()
       from mailer.email_outbox o where o.sender_key is null and o.status = 'pending'`,
  ],
}
type Plan = {
  Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number }
  'Execution Time': number
}
type Answer = {
  claim: { leases: unknown[][] | null }
  pausedMs: number | null
  probeInMs: number | null
}

console.log(`before: ${loadAverage()}`)
const cluster = await startBenchCluster()
const name = 'outbox_claim_past_paused'
await cluster.createDatabase(name)
await migrate({ url: cluster.url(name), log: silentLogger })
const probe = await openProbe(cluster.url(name))
try {
  // Each text installed afresh under a name of its own too: the migrated function's own catalog
  // row, replaced by each restatement since 0039, is measured beside its fresh copy.
  for (const [file, version] of [
    ['0082_mail_from_address_probes_after_pause', '0082'],
    ['0076_claim_past_paused_in_pieces', '0076'],
  ]) {
    const text = readFileSync(new URL(`../sql/${file}.sql`, import.meta.url), 'utf8')
    await probe.query(
      text
        .slice(text.indexOf('create or replace function mailer.claim_past_paused('))
        .replace('mailer.claim_past_paused(', `mailer.claim_past_paused_${version}(`),
    )
  }
  for (const offset of ['0', '1 hour']) {
    await probe.query(
      `select mailer.enqueue_email(jsonb_build_object('from', 'own' || (i % 50) || '@example.com', 'to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'x'),
                                   jsonb_build_object('sendAt', now() + $2::interval + i * interval '1 ms'))
         from generate_series(1, $1::int) i`,
      [rows, offset],
    )
  }
  await probe.query(
    `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hi","text":"x"}'::jsonb,
                                 jsonb_build_object('sendAt', now() + interval '2 hours'))`,
  )
  await probe.query('vacuum analyze mailer.email_outbox')
  // The claim in a transaction rolled back after it: EXPLAIN's run, or the answer's.
  const inTurn = async <T>(path: string, run: () => Promise<T>): Promise<T> => {
    await probe.query('begin')
    try {
      for (const s of PATHS[path]!) await probe.query(s, s.includes('$1') ? [MAIL_FROM] : [])
      return await run()
    } finally {
      await probe.query('rollback')
    }
  }
  const claim = (fn: string) =>
    `select mailer.${fn}(10, 'bench', gen_random_uuid(), 60, false, 5, $1, 5000) as c`
  const measured = (path: string, fn: string) =>
    inTurn(path, async () => {
      const [r] = await probe.query<{ 'QUERY PLAN': Plan[] }>(
        `explain (analyze, buffers, format json) ${claim(fn)}`,
        [MAIL_FROM],
      )
      return r!['QUERY PLAN'][0]!
    })
  const answered = (path: string, fn: string) =>
    inTurn(path, async () => (await probe.query<{ c: Answer }>(claim(fn), [MAIL_FROM]))[0]!.c)
  const shape = (a: Answer) =>
    JSON.stringify({
      ids: (a.claim.leases ?? []).map((l) => l[0]),
      paused: a.pausedMs !== null,
      probe: a.probeInMs !== null,
    })
  const results: Record<
    string,
    Record<string, { ms: number[]; buffers: number[]; shapes: Set<string> }>
  > = {}
  for (const path of Object.keys(PATHS)) {
    results[path] = {}
    for (const v of VARIANTS) results[path]![v] = { ms: [], buffers: [], shapes: new Set() }
    // Each variant compiled and planned on the connection before anything is counted; its answer.
    for (const v of VARIANTS) results[path]![v]!.shapes.add(shape(await answered(path, v)))
  }
  for (let r = 0; r < rounds; r++) {
    for (const path of Object.keys(PATHS)) {
      for (const v of rotated(VARIANTS, r)) {
        const plan = await measured(path, v)
        const slot = results[path]![v]!
        slot.ms.push(plan['Execution Time'])
        slot.buffers.push(plan.Plan['Shared Hit Blocks'] + plan.Plan['Shared Read Blocks'])
      }
    }
  }
  for (const [path, byVariant] of Object.entries(results)) {
    const [migrated, base, older] = VARIANTS.map((v) => byVariant[v]!)
    const answer = (v: typeof base) => [...v!.shapes].join(' | ')
    console.log(
      JSON.stringify({
        path,
        migratedMs: Math.round(median(migrated!.ms) * 1000) / 1000,
        ms0082: Math.round(median(base!.ms) * 1000) / 1000,
        ms0076: Math.round(median(older!.ms) * 1000) / 1000,
        migratedBuffers: median(migrated!.buffers),
        buffers0082: median(base!.buffers),
        buffers0076: median(older!.buffers),
        migratedAgrees: answer(migrated) === answer(base),
        answer: answer(base),
        ...(answer(older) === answer(base) ? {} : { answer0076: answer(older) }),
      }),
    )
  }
  // The probe's two lookups alone, as the function plans them (its settings, a generic plan).
  const SETTINGS = [
    'set local enable_seqscan = off',
    'set local enable_bitmapscan = off',
    'set local enable_sort = off',
    'set local plan_cache_mode = force_generic_plan',
  ]
  // mailer.mail_from_address_probe_row's statement (0083), 0082's lookup.
  const KEYED_LOOKUP = `select o.id, o.ctid, o.send_started_at is not null from mailer.email_outbox o
    where o.status = 'pending' and o.sender_key is not null and o.sender_key = $1 and o.send_at <= now()
    order by o.priority, o.send_at, o.id limit 1 for update of o skip locked`
  const LOOKUPS: [string, string, string][] = [
    [
      'probe due',
      'unkeyed',
      `select o.id, o.ctid, o.send_started_at is not null from mailer.email_outbox o
        where o.status = 'pending' and o.send_at <= now() and o.sender_key is null
        order by o.priority, o.send_at, o.id limit 1 for update of o skip locked`,
    ],
    ['address probe due', 'keyed', KEYED_LOOKUP],
    ['waiting, searched', 'keyed, none', KEYED_LOOKUP],
  ]
  for (const [path, lookup, text] of LOOKUPS) {
    const plan = await inTurn(path, async () => {
      for (const s of SETTINGS) await probe.query(s)
      await probe.query(`prepare lookup(text) as ${text.replace('$1', '$1::text')}`)
      try {
        const lines = await probe.query<{ 'QUERY PLAN': string }>(
          `explain (analyze, buffers, costs off, timing off, summary off) execute lookup('${MAIL_FROM}')`,
        )
        return lines.map((l) => l['QUERY PLAN'])
      } finally {
        await probe.query('deallocate lookup')
      }
    })
    console.log(JSON.stringify({ path, lookup, plan }))
  }
} finally {
  await probe.close()
  await cluster.stop()
  console.log(`after: ${loadAverage()}`)
}
