// A database cloned from the run's migrated template for a process of the test's own (the compiled binary): its URL and its drop, no pool.
import { testCluster } from '../preload.ts'
import { adminQuery } from './postgres.ts'

export interface TemplateDb {
  name: string
  url: string
  /** Drops it, sessions still on it included (a binary killed mid-test may leave one). */
  drop(): Promise<void>
}

/** `prefix` names the file's databases (outbox_api_…), so one left behind by a killed run says whose it is. */
export async function cloneTemplateDb(prefix: string): Promise<TemplateDb> {
  const cluster = await testCluster()
  const name = `${prefix}_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await adminQuery(cluster.admin, `create database ${name} template ${cluster.templateName}`)
  return {
    name,
    url: cluster.url(name),
    drop: async () => {
      await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`)
    },
  }
}
