// What a chaos run's actions act on: the database and its cluster, Graph, the processes, the harness's record and state.
import type { FakeGraphFaults } from '../../support/fake-graph.ts'
import type { Database, Graph, OwnCluster } from '../harness.ts'
import type { Background } from './background.ts'
import type { MailboxThrottles } from './graph-mix.ts'
import type { ChaosMailers } from './mailers.ts'
import type { ChaosRecord } from './record.ts'
import type { SlowDatabaseProxies } from './slow-database.ts'

export interface ChaosRun {
  seed: number
  cluster: OwnCluster
  db: Database
  graph: Graph
  /** The fake's chaos faults: the harness changes their latency and adds token faults to them. */
  graphAnswers: FakeGraphFaults & { latencyMs: number }
  /** The mailboxes the fake answers 429 for now, each with its Retry-After (the pause mix). */
  mailboxThrottles: MailboxThrottles
  mailers: ChaosMailers
  record: ChaosRecord
  background: Background
  /** From a Postgres stop or crash until its start again. */
  pgDown: boolean
  /** Slots whose worker is being stopped and started again. */
  busyWorkers: Set<number>
  /** The slow-database shape's proxies (CHAOS_SLOW_DB), else null. */
  slowDb: SlowDatabaseProxies | null
}
