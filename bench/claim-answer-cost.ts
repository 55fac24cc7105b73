// `bun run bench/claim-answer-cost.ts [batches] [rows]`: what a drain claim's JSON answer and its in-flight index insert cost the backend, variants taking turns.
//
// mailer.claim_batch (sql/0019) locks and updates the due rows, then answers them as one JSON array
// of arrays (json_agg of json_build_array, in claim order). This runs one claim of `rows` committed
// rows at a time on one connection per variant, the variants taking turns batch by batch in a
// rotating order, each claim's rows then set sent by a plain UPDATE (not measured), and reports the
// claiming backend's CPU per row (/proc, summed over the batches: ticks are 10 ms) for:
// the function as migrated; its update with an answer of ids only (what the JSON costs); with the
// message alone answered (json_agg of the jsonb column); with the answer restated as a few string
// and json_agg columns (another shape, same data); and as migrated on a database without
// email_outbox_sending_idx (what the claim's insert into the in-flight index costs). The variants
// are sql/0019's text edited here, created beside the real function; nothing else is changed.
// Also: the outbox's updates and how many were HOT (pg_stat_user_tables) over the run.
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { backendCpuSeconds } from './server-stats.ts'
import { OUTBOX_MESSAGE } from './systems/outbox-engine.ts'
import { rotated } from './turns.ts'

const batches = Number(process.argv[2] ?? 60)
const rows = Number(process.argv[3] ?? 500)
const WARMUP_BATCHES = 3

const text = await readFile(
  new URL('../sql/0019_claim_update_by_ctid.sql', import.meta.url),
  'utf8',
)
const migrated = text.slice(text.indexOf('create or replace function'))
const ANSWER = /select json_agg\(json_build_array[\s\S]*?from claimed_rows c;/
function variant(name: string, answer: string): string {
  const edited = migrated
    .replace('mailer.claim_batch(', `mailer.claim_batch_${name}(`)
    .replace(ANSWER, answer)
  if (!ANSWER.test(migrated) || edited.includes('json_build_array(c.id'))
    throw new Error(`sql/0019 no longer holds the answer this edits (${name})`)
  return edited
}
const VARIANTS = [
  variant('ids', 'select json_agg(c.id) into leases from claimed_rows c;'),
  variant('message', 'select json_agg(c.message) into leases from claimed_rows c;'),
  variant(
    'columns',
    `select json_build_object('ids', string_agg(c.id::text, ','), 'tenants', json_agg(c.tenant),
       'attempts', string_agg(c.attempts::text || ':' || c.max_attempts::text, ','),
       'flags', string_agg((c.expired::int | c.cancel_requested::int << 1 | c.ambiguous::int << 2
                            | (c.marked and not c.ambiguous)::int << 3)::text, ''),
       'correlation', json_agg(c.correlation_id), 'messages', json_agg(c.message),
       'templates', json_agg(c.template), 'sources', json_agg(c.source_row)) into leases
       from (select * from claimed_rows c order by c.priority, c.send_at, c.id) c;`,
  ),
]

interface Subject {
  name: string
  db: 'outbox' | 'no_sending_idx'
  fn: string
  claimer?: pg.Client
  pid?: number
  other?: pg.Client
  cpu: number
  rows: number
}
const subjects: Subject[] = [
  { name: 'claim_batch as migrated', db: 'outbox', fn: 'claim_batch', cpu: 0, rows: 0 },
  {
    name: 'answer: ids only (no JSON of the rows)',
    db: 'outbox',
    fn: 'claim_batch_ids',
    cpu: 0,
    rows: 0,
  },
  {
    name: 'answer: json_agg(message) only',
    db: 'outbox',
    fn: 'claim_batch_message',
    cpu: 0,
    rows: 0,
  },
  {
    name: 'answer: string and json_agg columns',
    db: 'outbox',
    fn: 'claim_batch_columns',
    cpu: 0,
    rows: 0,
  },
  {
    name: 'as migrated, no email_outbox_sending_idx',
    db: 'no_sending_idx',
    fn: 'claim_batch',
    cpu: 0,
    rows: 0,
  },
]

const cluster = await startBenchCluster()
const connect = async (db: string) => {
  const c = new pg.Client({ connectionString: cluster.url(db) })
  await c.connect()
  return c
}
try {
  for (const db of ['outbox', 'no_sending_idx']) {
    await cluster.createDatabase(db)
    await migrate({ url: cluster.url(db), log: silentLogger })
    const c = await connect(db)
    for (const v of VARIANTS) await c.query(v)
    if (db === 'no_sending_idx') await c.query('drop index mailer.email_outbox_sending_idx')
    await c.end()
  }
  for (const s of subjects) {
    s.claimer = await connect(s.db)
    s.pid = (await s.claimer.query<{ p: number }>('select pg_backend_pid() as p')).rows[0]!.p
    s.other = await connect(s.db)
  }
  for (let b = -WARMUP_BATCHES; b < batches; b++) {
    for (const s of rotated(subjects, b + WARMUP_BATCHES)) {
      await s.other!.query(
        `insert into mailer.email_outbox (message) select ${OUTBOX_MESSAGE} from generate_series(1, $1)`,
        [rows],
      )
      const before = await backendCpuSeconds(s.pid!)
      const r = await s.claimer!.query<{ claim: string }>(
        `select mailer.${s.fn}($1::int, 'bench', gen_random_uuid(), 60::float8, true, 5)::text as claim`,
        [rows],
      )
      const after = await backendCpuSeconds(s.pid!)
      const settled = await s.other!.query(`update mailer.email_outbox
           set status = 'sent', sent_at = now(), lease_owner = null, lease_token = null,
               lease_expires_at = null, send_started_at = null
         where status = 'sending'`)
      if (settled.rowCount !== rows || !r.rows[0]!.claim.includes('"leases"'))
        throw new Error(`${s.name}: claimed ${settled.rowCount} of ${rows}`)
      if (b >= 0) {
        s.cpu += after - before
        s.rows += rows
      }
    }
  }
  const base = subjects[0]!.cpu / subjects[0]!.rows
  console.log(
    `${batches} claims of ${rows} rows per variant (after ${WARMUP_BATCHES} unmeasured), taking turns`,
  )
  console.table(
    subjects.map((s) => ({
      variant: s.name,
      'backend CPU µs/row': ((s.cpu / s.rows) * 1e6).toFixed(2),
      '÷ as migrated': (s.cpu / s.rows / base).toFixed(2),
    })),
  )
  const c = await connect('outbox')
  const upd = await c.query(
    `select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables where relid = 'mailer.email_outbox'::regclass`,
  )
  console.log('email_outbox updates (claims and settlements):', upd.rows[0])
  await c.end()
} finally {
  for (const s of subjects) {
    await s.claimer?.end().catch(() => {})
    await s.other?.end().catch(() => {})
  }
  await cluster.stop()
}
