// A one-connection Kysely whose every statement's plan comes back as a notice (auto_explain: analyze, buffers), for benchmarks that read the plans the product's own calls get.
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { Database } from '../src/db/schema.ts'

export interface ExplainedDb {
  db: Kysely<Database>
  /** The notices since the last clear: each statement's duration line and plan. */
  notices: string[]
}

/**
 * One connection, so the session's auto_explain settings hold for every statement. `timing: false`
 * leaves out the per-node clock reads, which on a node of 10,000 rows cost more than its work
 * (the duration line stays).
 */
export async function openExplainedDb(url: string, o: { timing: boolean }): Promise<ExplainedDb> {
  const notices: string[] = []
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  pool.on('connect', (c) => {
    c.on('notice', (n) => notices.push(n.message ?? ''))
  })
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  const session = await pool.connect()
  await session.query(`load 'auto_explain'`)
  for (const s of [
    'auto_explain.log_min_duration = 0',
    'auto_explain.log_analyze = on',
    'auto_explain.log_buffers = on',
    `auto_explain.log_timing = ${o.timing ? 'on' : 'off'}`,
    'auto_explain.log_level = notice',
    'auto_explain.log_parameter_max_length = 0',
    'client_min_messages = notice',
  ])
    await session.query(`set ${s}`)
  session.release()
  return { db, notices }
}

/** A plan's duration line's milliseconds and its top node's shared buffers (hit + read). */
export function planCost(plan: string): { ms: number; buffers: number } {
  const top = /Buffers: shared hit=(\d+)(?: read=(\d+))?/.exec(plan)
  return {
    ms: Number(/duration: ([\d.]+) ms/.exec(plan)?.[1] ?? Number.NaN),
    buffers: Number(top?.[1] ?? 0) + Number(top?.[2] ?? 0),
  }
}

export interface TurnCosts {
  ms: number[]
  buffers: number[]
  /** The last run's plan. */
  plan: string
}

/** Each of `runs` run `reps` times, taking turns on `e`'s connection: every run's duration, top buffers and last plan. */
export async function costsTakingTurns(
  e: ExplainedDb,
  runs: Record<string, () => Promise<unknown>>,
  reps: number,
): Promise<Record<string, TurnCosts>> {
  const costs: Record<string, TurnCosts> = {}
  for (let i = 0; i < reps; i++) {
    for (const [name, run] of Object.entries(runs)) {
      e.notices.length = 0
      await run()
      const plan = e.notices.join('\n')
      const cost = planCost(plan)
      costs[name] ??= { ms: [], buffers: [], plan }
      const c = costs[name]
      c.ms.push(cost.ms)
      c.buffers.push(cost.buffers)
      c.plan = plan
    }
  }
  return costs
}
