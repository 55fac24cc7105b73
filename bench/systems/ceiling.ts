// The ceiling: a minimal hand-written SKIP LOCKED claim-and-complete loop (batched), keeping finished rows.
import pg from 'pg'
import type { Probe } from './probe.ts'
import type { BenchSystem, StartOptions } from './system.ts'

export const CEILING_SCHEMA = `
  create table if not exists jobs (
    id bigint generated always as identity primary key,
    status text not null default 'pending',
    payload jsonb not null,
    locked_until timestamptz,
    done_at timestamptz
  );
  create index if not exists jobs_pending_idx on jobs (id) where status = 'pending';`

// Two loops; each claims up to 500 rows in one statement (as graphile's local queue does), runs them
// `concurrency` at a time, and completes them in one statement. bench/ceiling-variants.ts measures
// larger claims and the unpinned plan.
const LOOPS = 2
export const CEILING_BATCH = 500

/**
 * The claim's plan pinned to an ordered scan of jobs_pending_idx that stops after $1 rows, as our
 * own claim pins its plan. Left to the planner (before round 19), a claim after a bulk insert into a
 * table analysed empty sorted every pending row (bitmap scan, sort, then a hash join over a
 * sequential scan of the table): O(backlog) per claim, 14-19 ms for 500 of 20,000 rows against 3.9.
 */
export const CEILING_PLAN_OPTIONS =
  '-c enable_seqscan=off -c enable_bitmapscan=off -c enable_sort=off'

// The loop's two statements: claim up to $1 rows (returning each row's key), complete the ids in $1.
export const CEILING_CLAIM = `update jobs set status = 'running', locked_until = now() + interval '1 minute'
  where id in (select id from jobs where status = 'pending' order by id limit $1 for update skip locked)
  returning id, (payload ->> 'k')::int as k`
export const CEILING_COMPLETE = `update jobs set status = 'done', done_at = now(), locked_until = null where id = any($1::bigint[])`

export interface CeilingOptions {
  /** Rows per claim. */
  claim?: number
  /** Leave the claim's plan to the planner, as before round 19. */
  unpinned?: boolean
}

export function ceilingSystem(
  database: string,
  url: string,
  probe: Probe,
  { claim = CEILING_BATCH, unpinned = false }: CeilingOptions = {},
): BenchSystem {
  let pool: pg.Pool | null = null
  let running = false
  let loops: Promise<void>[] = []

  async function loop(concurrency: number, onStart?: (key: number) => void) {
    while (running && pool) {
      const { rows } = await pool.query<{ id: string; k: number | null }>(CEILING_CLAIM, [claim])
      if (rows.length === 0) {
        await Bun.sleep(5)
        continue
      }
      for (let i = 0; i < rows.length; i += concurrency) {
        await Promise.all(rows.slice(i, i + concurrency).map(async (r) => onStart?.(r.k ?? 0)))
      }
      await pool.query(CEILING_COMPLETE, [rows.map((r) => r.id)])
    }
  }

  return {
    name: `SKIP LOCKED ceiling${claim === CEILING_BATCH ? '' : `, ${claim}-row claims`}${unpinned ? ', plan unpinned' : ''}`,
    database,
    async prepare() {
      await probe.query(CEILING_SCHEMA)
    },
    async reset() {
      await probe.query('truncate jobs')
      await probe.query('vacuum analyze jobs')
    },
    insertBulk: (n) =>
      probe.insertAndMark([
        {
          text: `insert into jobs (payload) select jsonb_build_object('n', g) from generate_series(1, $1) g`,
          values: [n],
        },
      ]),
    async insertOne(key) {
      await probe.query(`insert into jobs (payload) values (jsonb_build_object('k', $1::int))`, [
        key,
      ])
    },
    async start(o: StartOptions) {
      pool = new pg.Pool({
        connectionString: url,
        max: LOOPS,
        application_name: 'ceiling',
        ...(unpinned ? {} : { options: CEILING_PLAN_OPTIONS }),
      })
      running = true
      const each = Math.max(1, Math.floor(o.concurrency / LOOPS))
      loops = Array.from({ length: LOOPS }, () => loop(each, o.onStart))
    },
    async stop() {
      running = false
      await Promise.all(loops)
      await pool?.end()
      pool = null
    },
    async remaining() {
      const r = await probe.query<{ n: string }>(
        `select count(*) as n from jobs where status <> 'done'`,
      )
      return Number(r[0]!.n)
    },
  }
}
