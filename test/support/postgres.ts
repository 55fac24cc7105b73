// The test run's Postgres: TEST_DATABASE_URL if given, else one embedded cluster per `bun test` run.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { migrate } from '../../src/db/migrate.ts'
import { type EmbeddedServer, startEmbeddedPostgres } from '../../src/embedded-postgres.ts'
import { silentLogger } from '../../src/log.ts'

export interface TestCluster {
  /**
   * The URL the run was given (TEST_DATABASE_URL as it is, its database included; else the
   * embedded cluster's `postgres`): where databases and roles are created and dropped. A user's
   * server need not let anyone into a database named `postgres`.
   */
  admin: string
  /** URL of a database on the cluster (admin rights). */
  url(database: string): string
  templateName: string
  stop(): Promise<void>
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

export async function startTestCluster(): Promise<TestCluster> {
  let embedded: EmbeddedServer | null = null
  let base = process.env.TEST_DATABASE_URL
  if (!base) {
    const dir = await mkdtemp(join(tmpdir(), 'outbox-test-pg-'))
    // TEST_POSTGRES_NATIVE: another Postgres version's binaries (.ci/run runs the suite on 17 too).
    embedded = await startEmbeddedPostgres({
      dir,
      persistent: false,
      fast: true,
      nativeDir: process.env.TEST_POSTGRES_NATIVE || undefined,
      // One timed-out test must not stop the run's cluster under every test after it.
      grandchild: true,
      // Two-phase commit, as an application under an XA transaction manager uses it (enqueue-sql.test.ts).
      extraFlags: ['-c', 'max_prepared_transactions=4'],
    })
    base = embedded.url('postgres')
  }
  const adminUrl = base
  const url = (database: string) => withDatabase(adminUrl, database)
  const templateName = `outbox_tpl_${process.pid}_${Date.now().toString(36)}`
  await adminQuery(adminUrl, `create database ${templateName}`)
  // Built by the real migrate(), so every run exercises the migrations.
  await migrate({ url: url(templateName), log: silentLogger })
  await adminQuery(adminUrl, `alter database ${templateName} with is_template true`)
  return {
    admin: adminUrl,
    url,
    templateName,
    stop: async () => {
      await adminQuery(adminUrl, `alter database ${templateName} with is_template false`).catch(
        () => {},
      )
      await adminQuery(adminUrl, `drop database if exists ${templateName} with (force)`).catch(
        () => {},
      )
      await embedded?.stop()
    },
  }
}

export async function adminQuery(url: string, text: string, values?: unknown[]) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await client.query(text, values)
  } finally {
    await client.end()
  }
}
