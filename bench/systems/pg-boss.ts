// pg-boss with a no-op handler: its defaults, or batched fetch + completion with LISTEN/NOTIFY wake-ups.
import { PgBoss } from 'pg-boss'
import type { Probe } from './probe.ts'
import type { BenchSystem, StartOptions } from './system.ts'

const QUEUE = 'noop'
// What pg-boss's own insert adds for a notify-enabled queue (plans.js notifyQueue): one wake-up per transaction.
const NOTIFY = `select pg_notify('pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24), '${QUEUE}')`
// Two loops, each fetching and completing half the concurrency at once (as the ceiling does).
const LOOPS = 2

export function pgBossSystem(
  database: string,
  url: string,
  probe: Probe,
  batched: boolean,
): BenchSystem {
  let boss: PgBoss | null = null
  const open = () => {
    const b = new PgBoss({ connectionString: url, ...(batched ? { useListenNotify: true } : {}) })
    b.on('error', () => {})
    return b
  }
  const insert = (rowsSql: string, values: unknown[]) => {
    const statements = [{ text: `insert into pgboss.job (name, data, policy) ${rowsSql}`, values }]
    if (batched) statements.push({ text: NOTIFY, values: [] })
    return statements
  }
  return {
    name: batched ? 'pg-boss (batched + notify)' : 'pg-boss (defaults)',
    database,
    async prepare() {
      const b = open()
      await b.start()
      await b.createQueue(QUEUE, batched ? { notify: true } : {})
      await b.stop({ graceful: false })
    },
    async reset() {
      await probe.query(`delete from pgboss.job where name = $1`, [QUEUE])
      await probe.query('vacuum analyze')
    },
    insertBulk: (n) =>
      probe.insertAndMark(
        insert(`select $1, jsonb_build_object('n', g), 'standard' from generate_series(1, $2) g`, [
          QUEUE,
          n,
        ]),
      ),
    async insertOne(key) {
      await probe.insertAndMark(
        insert(`values ($1, jsonb_build_object('k', $2::int), 'standard')`, [QUEUE, key]),
      )
    },
    async start(o: StartOptions) {
      boss = open()
      await boss.start()
      const handler = async (jobs: { data: unknown }[]) => {
        for (const j of jobs) o.onStart?.((j.data as { k?: number }).k ?? 0)
      }
      const options = batched
        ? {
            batchSize: Math.max(1, Math.floor(o.concurrency / LOOPS)),
            localConcurrency: LOOPS,
            burstWhenBatchFull: true,
          }
        : { localConcurrency: o.concurrency }
      await boss.work(QUEUE, options, handler)
    },
    async stop() {
      await boss?.stop({ graceful: true, timeout: 5000 })
      boss = null
    },
    async remaining() {
      const r = await probe.query<{ n: string }>(
        `select count(*) as n from pgboss.job where name = $1 and state < 'completed'`,
        [QUEUE],
      )
      return Number(r[0]!.n)
    },
  }
}
