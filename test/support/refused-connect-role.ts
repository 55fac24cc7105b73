// A login role that may not CONNECT to a test's database (PUBLIC's CONNECT revoked), for the duration of one callback.
import { randomBytes } from 'node:crypto'
import { adminQuery, type TestCluster } from './postgres.ts'

/**
 * Runs `fn` with `databaseUrl` rewritten to a new role the database refuses at connect (42501):
 * every role may CONNECT through PUBLIC unless that is revoked. Restored and dropped afterwards.
 */
export async function withRoleRefusedConnect(
  cluster: TestCluster,
  databaseUrl: string,
  rolePrefix: string,
  fn: (url: URL) => Promise<void>,
): Promise<void> {
  const dbName = new URL(databaseUrl).pathname.slice(1)
  const role = `${rolePrefix}_${process.pid}`
  const password = `pw-${randomBytes(12).toString('hex')}`
  await adminQuery(cluster.admin, `create role ${role} login password '${password}'`)
  try {
    await adminQuery(cluster.url(dbName), `revoke connect on database ${dbName} from public`)
    const url = new URL(databaseUrl)
    url.username = role
    url.password = password
    await fn(url)
  } finally {
    await adminQuery(cluster.url(dbName), `grant connect on database ${dbName} to public`)
    await adminQuery(cluster.admin, `drop role if exists ${role}`)
  }
}
