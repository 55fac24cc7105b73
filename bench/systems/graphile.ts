// graphile-worker with a no-op task: its defaults, or its documented high-throughput preset.
import { Logger, type Runner, run, runMigrations } from 'graphile-worker'
import type { Probe } from './probe.ts'
import type { BenchSystem, StartOptions } from './system.ts'

const logger = new Logger(() => () => {})

/**
 * `batched` follows worker.graphile.org/docs/performance: localQueue 500, completeJobBatchDelay 0,
 * failJobBatchDelay 0, maxPoolSize concurrency + 1.
 */
export function graphileSystem(
  database: string,
  url: string,
  probe: Probe,
  batched: boolean,
): BenchSystem {
  let runner: Runner | null = null
  return {
    name: batched ? 'graphile-worker (batched)' : 'graphile-worker (defaults)',
    database,
    async prepare() {
      await runMigrations({ connectionString: url, logger })
    },
    async reset() {
      await probe.query('delete from graphile_worker._private_jobs')
      await probe.query('vacuum analyze graphile_worker._private_jobs')
    },
    insertBulk: (n) =>
      probe.insertAndMark([
        {
          text: `select graphile_worker.add_jobs(array(
                   select row('noop', json_build_object('n', g), null, null, null, null, null, null)::graphile_worker.job_spec
                     from generate_series(1, $1) g))`,
          values: [n],
        },
      ]),
    async insertOne(key) {
      await probe.query(`select graphile_worker.add_job('noop', json_build_object('k', $1::int))`, [
        key,
      ])
    },
    async start(o: StartOptions) {
      const worker = batched
        ? {
            maxPoolSize: o.concurrency + 1,
            localQueue: { size: 500 },
            completeJobBatchDelay: 0,
            failJobBatchDelay: 0,
          }
        : {}
      runner = await run({
        connectionString: url,
        concurrency: o.concurrency,
        noHandleSignals: true,
        logger,
        taskList: {
          noop: async (payload) => {
            o.onStart?.((payload as { k?: number }).k ?? 0)
          },
        },
        preset: { worker },
      })
    },
    async stop() {
      await runner?.stop()
      runner = null
    },
    async remaining() {
      const r = await probe.query<{ n: string }>(
        'select count(*) as n from graphile_worker._private_jobs',
      )
      return Number(r[0]!.n)
    },
  }
}
