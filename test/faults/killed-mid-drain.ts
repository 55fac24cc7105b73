// A drain killed -9 mid-flight (scenarios 1 and 11): one worker process sends a database's rows at Graph's 200 ms pace until Graph has accepted some and sends are in flight, then dies.
import { expect } from 'bun:test'
import type { GraphFault } from '../support/fake-graph.ts'
import {
  type Database,
  enqueue,
  FAST,
  type Graph,
  sharedDatabase,
  spawnMailer,
  startGraph,
  within,
} from './harness.ts'

const LATENCY_MS = 200

/** Graph's answer to a send it does not take once the kill has come: nobody is left to read it. */
export const NOT_TAKEN = {
  status: 503,
  code: 'ServiceUnavailable',
  message: 'not taken: the worker was killed while its request was in flight',
} as const satisfies GraphFault

export interface KilledDrain {
  db: Database
  graph: Graph
  ids: string[]
  /** The killed worker's environment, for its restart. */
  env: Record<string, string>
}

/**
 * `rows` rows on a new database `database`; the worker `mailer` is killed once Graph has accepted
 * `acceptedBeforeKill` of them with at least 8 sends in flight, and has exited.
 * `halfTakenAtKill`: of the sends in flight at the kill, Graph takes every other one and answers
 * the rest NOT_TAKEN (first taken), so the kill leaves, each run, sends Graph took that nobody
 * recorded and started sends it never took; otherwise it takes them all, and a send whose start
 * was recorded but whose request had not reached Graph yet is left by chance.
 */
export async function killedMidDrain(o: {
  database: string
  mailer: string
  rows: number
  lookup: boolean
  acceptedBeforeKill: number
  halfTakenAtKill?: boolean
}): Promise<KilledDrain> {
  const db = await sharedDatabase(o.database)
  const graph = await startGraph({ mailRead: o.lookup, concurrencyLimit: 40 })
  graph.fake.setFaults({ latencyMs: LATENCY_MS })
  const ids = await enqueue(db, o.rows)
  const env = {
    DATABASE_URL: db.url,
    ...graph.env,
    ...FAST,
    WORKER_CONCURRENCY: '40',
    GRAPH_MAX_CONCURRENCY: '32',
    GRAPH_MAILBOX_LOOKUP: String(o.lookup),
    AMBIGUOUS_SEND_POLICY: 'resend',
  }
  const first = await spawnMailer(o.mailer, env)
  await within(
    `${o.acceptedBeforeKill} messages accepted and sends in flight before the kill`,
    30_000,
    () =>
      new Set(graph.fake.accepted.map((a) => a.outboxId)).size >= o.acceptedBeforeKill &&
      graph.fake.inFlight() >= 8
        ? true
        : undefined,
    { mailers: [first], every: 5 },
  )
  if (o.halfTakenAtKill) {
    // In the same turn as the kill: the sends in flight are still in their latency, so none is
    // answered before the worker is gone.
    let n = 0
    graph.fake.setFaults({
      latencyMs: LATENCY_MS,
      pickSendMail: () => (n++ % 2 === 1 ? NOT_TAKEN : undefined),
    })
  }
  first.proc.kill('SIGKILL')
  expect(await first.exited).not.toBe(0)
  return { db, graph, ids, env }
}

/**
 * Waits until the killed worker's sessions are gone. A statement it sent before it died runs on to
 * its end (its backend notices the closed connection only then), so a last check's starts may
 * commit after the kill: the state read before would miss sends started, and their deadlines.
 */
export async function killedSessionsEnded(db: Database) {
  await within("the killed worker's sessions ended", 10_000, async () => {
    const [r] = await db.q<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name like 'outbox-mailer%'`,
    )
    return r!.n === 0 ? true : undefined
  })
}
