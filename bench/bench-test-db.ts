// A bench cluster with one migrated database, as the test engine takes it (a TestDb): the workers' handle and the bench's own probe pool.
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { type DbHandle, openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import type { TestDb } from '../test/support/db.ts'
import { type BenchCluster, startBenchCluster } from './cluster.ts'

export interface BenchTestDb {
  cluster: BenchCluster
  /** The workers' route to the database. */
  handle: DbHandle
  /** The bench's own reads, as bench_probe: left out of the workers' statement counts. */
  probePool: pg.Pool
  t: TestDb
  /** Closes the handle and the pool, then stops the cluster. */
  close(): Promise<void>
}

export async function startBenchTestDb(name: string): Promise<BenchTestDb> {
  const cluster = await startBenchCluster()
  await cluster.createDatabase(name)
  await migrate({ url: cluster.url(name), log: silentLogger })
  const handle = openDb({ name: 'bench', url: cluster.url(name), log: silentLogger })
  const probePool = new pg.Pool({ connectionString: cluster.probeUrl(name), max: 2 })
  const t = { ...handle, url: cluster.url(name), pool: probePool } as unknown as TestDb
  return {
    cluster,
    handle,
    probePool,
    t,
    async close() {
      await handle.close()
      await probePool.end()
      await cluster.stop()
    },
  }
}
