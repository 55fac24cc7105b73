// `bun run bench/probe-search.ts [rounds] [keyed...]`: MAIL_FROM's probe row search (mail_from_probe_row) against other shapes of it, taking turns, fresh and vacuumed.
//
// The search (0083) walks email_outbox_claim_idx in claim order and reads each entry's heap row to
// see whether it names a sender (sender_key): every due keyed row ahead of MAIL_FROM's first due row
// costs a heap visit. The shapes it is measured against find the same row without an index of
// their own (an index of unkeyed pending rows would cost every MAIL_FROM enqueue WAL): the claim
// index read index-only, less the entries that email_outbox_named_sender_idx holds (the same key,
// priority, send_at, id), as a nested-loop anti-join and as a merge anti-join. For each count of
// keyed rows (default 20,000 and 200,000, naming 50 senders, due an hour ago onwards, a millisecond
// apart) a database of its own, its autovacuum off (fresh stays fresh), with MAIL_FROM's rows (no
// sender key) two hours out. In two paths: "probe due" (one MAIL_FROM row moved to a second ago in
// the transaction: behind every keyed row) and "waiting" (none due: the search reads every due
// row). Each search runs as the function plans it (its settings, a generic plan) with EXPLAIN
// (ANALYZE, BUFFERS, TIMING OFF: no clock read per row and node, which would charge the joins'
// extra nodes) in a transaction rolled back after it, the shapes in a rotating order round by
// round, first on fresh pages (never vacuumed: the visibility map empty), then after VACUUM.
// Reports per state, path and shape the median shared buffers, heap fetches, execution time and
// the ratio of each to the 0083 shape's, and whether the row found agrees with it.
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { openProbe } from './systems/probe.ts'
import { rotated } from './turns.ts'

const rounds = Number(process.argv[2] ?? 9)
const counts = process.argv.slice(3).map(Number)
const SETTINGS = [
  'set local enable_seqscan = off',
  'set local enable_bitmapscan = off',
  'set local enable_sort = off',
  'set local enable_indexscan = on',
  'set local plan_cache_mode = force_generic_plan',
]
// The first due claim-index entry that email_outbox_named_sender_idx lacks, both read index-only
// (key columns only), then its row by primary key, rechecked and locked. `inner` matches the
// entry in the named-sender index (the nested loop's must not use the primary key instead).
const anti = (inner: string) => `select o.id, o.ctid, o.send_started_at is not null
    from (select c.priority, c.send_at, c.id from mailer.email_outbox c
           where c.status = 'pending' and c.send_at <= now()
             and not exists (select from mailer.email_outbox k
                              where k.status = 'pending' and k.sender_key is not null and ${inner})
           order by c.priority, c.send_at, c.id) f
    join mailer.email_outbox o on o.id = f.id
   where o.status = 'pending' and o.sender_key is null and o.send_at <= now()
   order by f.priority, f.send_at, f.id limit 1 for update of o skip locked`
// Each shape: its statement and the settings it adds to the function's.
const SHAPES: Record<string, { text: string; settings: string[] }> = {
  '0083': {
    text: `select o.id, o.ctid, o.send_started_at is not null from mailer.email_outbox o
      where o.status = 'pending' and o.send_at <= now() and o.sender_key is null
      order by o.priority, o.send_at, o.id limit 1 for update of o skip locked`,
    settings: [],
  },
  'anti-join, nested loop': {
    text: anti(
      'k.priority = c.priority and k.send_at = c.send_at and k.id::numeric = c.id::numeric',
    ),
    settings: ['set local enable_mergejoin = off', 'set local enable_hashjoin = off'],
  },
  'anti-join, merge': {
    text: anti('k.priority = c.priority and k.send_at = c.send_at and k.id = c.id'),
    settings: ['set local enable_hashjoin = off'],
  },
}
const PATHS: Record<string, string[]> = {
  'probe due': [
    `update mailer.email_outbox set send_at = now() - interval '1 second'
      where id = (select min(id) from mailer.email_outbox where sender_key is null)`,
  ],
  waiting: [],
}
type Node = {
  'Node Type': string
  'Index Name'?: string
  'Heap Fetches'?: number
  'Actual Rows': number
  Plans?: Node[]
}
type Plan = {
  Plan: Node & { 'Shared Hit Blocks': number; 'Shared Read Blocks': number }
  'Execution Time': number
}
type Sample = { buffers: number; heapFetches: number; ms: number; found: string; scans: string }

const nodes = (n: Node): Node[] => [n, ...(n.Plans ?? []).flatMap(nodes)]

console.log(`before: ${loadAverage()}`)
const cluster = await startBenchCluster()
try {
  for (const keyed of counts.length > 0 ? counts : [20_000, 200_000]) {
    const name = `outbox_probe_search_${keyed}`
    await cluster.createDatabase(name)
    await migrate({ url: cluster.url(name), log: silentLogger })
    const probe = await openProbe(cluster.url(name))
    try {
      await probe.query('alter table mailer.email_outbox set (autovacuum_enabled = false)')
      await probe.query(
        `select mailer.enqueue_email(jsonb_build_object('from', 'own' || (i % 50) || '@example.com', 'to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'x'),
                                     jsonb_build_object('sendAt', now() - interval '1 hour' + i * interval '1 ms'))
           from generate_series(1, $1::int) i`,
        [keyed],
      )
      await probe.query(
        `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hi","text":"x"}'::jsonb,
                                     jsonb_build_object('sendAt', now() + interval '2 hours'))
           from generate_series(1, 3)`,
      )
      await probe.query('analyze mailer.email_outbox')
      const search = async (path: string, shape: string): Promise<Sample> => {
        await probe.query('begin')
        try {
          for (const s of PATHS[path]!) await probe.query(s)
          for (const s of [...SETTINGS, ...SHAPES[shape]!.settings]) await probe.query(s)
          await probe.query(`prepare search as ${SHAPES[shape]!.text}`)
          const [r] = await probe.query<{ 'QUERY PLAN': Plan[] }>(
            'explain (analyze, buffers, timing off, format json) execute search',
          )
          const [found] = await probe.query<{ id: string | null }>('execute search')
          const plan = r!['QUERY PLAN'][0]!
          const all = nodes(plan.Plan)
          return {
            buffers: plan.Plan['Shared Hit Blocks'] + plan.Plan['Shared Read Blocks'],
            heapFetches: all.reduce((s, n) => s + (n['Heap Fetches'] ?? 0), 0),
            ms: plan['Execution Time'],
            found: String(found?.id ?? null),
            scans: all
              .filter((n) => n['Node Type'].includes('Scan') || n['Node Type'].includes('Join'))
              .map((n) => `${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}`)
              .join(' / '),
          }
        } finally {
          await probe.query('rollback')
          await probe.query('deallocate all')
        }
      }
      for (const state of ['fresh', 'vacuumed']) {
        if (state === 'vacuumed') await probe.query('vacuum mailer.email_outbox')
        for (const path of Object.keys(PATHS)) {
          const samples: Record<string, Sample[]> = {}
          // Each shape once unmeasured: hint bits set, pages cached, for every shape alike.
          for (const shape of Object.keys(SHAPES)) {
            await search(path, shape)
            samples[shape] = []
          }
          for (let r = 0; r < rounds; r++) {
            for (const shape of rotated(Object.keys(SHAPES), r)) {
              samples[shape]!.push(await search(path, shape))
            }
          }
          const base = samples['0083']!
          const baseBuffers = median(base.map((s) => s.buffers))
          const baseMs = median(base.map((s) => s.ms))
          for (const [shape, s] of Object.entries(samples)) {
            const buffers = median(s.map((x) => x.buffers))
            const ms = median(s.map((x) => x.ms))
            console.log(
              JSON.stringify({
                keyed,
                state,
                path,
                shape,
                buffers,
                buffersRatio: Math.round((buffers / baseBuffers) * 1000) / 1000,
                heapFetches: median(s.map((x) => x.heapFetches)),
                ms: Math.round(ms * 1000) / 1000,
                msRatio: Math.round((ms / baseMs) * 100) / 100,
                agrees: s.every((x, i) => x.found === base[i]!.found),
                found: s[0]!.found,
                scans: s[0]!.scans,
              }),
            )
          }
        }
      }
    } finally {
      await probe.close()
    }
  }
} finally {
  await cluster.stop()
  console.log(`after: ${loadAverage()}`)
}
