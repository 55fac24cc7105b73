// A drain killed -9 mid-flight (scenarios 1 and 11): one worker process sends a database's rows at Graph's 200 ms pace until Graph has accepted some and sends are in flight, then dies.
import { expect } from 'bun:test'
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
 */
export async function killedMidDrain(o: {
  database: string
  mailer: string
  rows: number
  lookup: boolean
  acceptedBeforeKill: number
}): Promise<KilledDrain> {
  const db = await sharedDatabase(o.database)
  const graph = await startGraph({ mailRead: o.lookup, concurrencyLimit: 40 })
  graph.fake.setFaults({ latencyMs: 200 })
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
