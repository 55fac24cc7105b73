// The chaos soak's least-privileged shape: the mailers log in as a role holding the deploy guide's step 7 grants alone, and no log line of theirs says a right was refused.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { adminQuery } from '../../support/postgres.ts'
import { serviceRoleGrants } from '../../support/service-role-grants.ts'
import type { Database, Mailer, OwnCluster } from '../harness.ts'

const ROLE = 'chaos_svc'

export interface WorkerRole {
  /** A mailer's URLs for `url` (the database, or a slot's proxy to it): the role's login, the owner's to listen. */
  env(url: string): Record<string, string>
}

/** Creates the role in the soak's own cluster and grants it what the guide says, as the schema's owner. */
export async function createWorkerRole(cluster: OwnCluster, db: Database): Promise<WorkerRole> {
  // Generated per run: no fixed password in the repository.
  const password = `pw-${randomBytes(12).toString('hex')}`
  await adminQuery(
    cluster.server.url('postgres'),
    `create role ${ROLE} login password '${password}'`,
  )
  await db.q(serviceRoleGrants(ROLE))
  return {
    env(url) {
      const login = new URL(url)
      login.username = ROLE
      login.password = password
      return { DATABASE_URL: login.toString(), LISTEN_DATABASE_URL: url }
    },
  }
}

/** A problem unless the mailers' pooled sessions, while they run, are the role's (the shape is what it says). */
export async function roleUnused(db: Database): Promise<string[]> {
  const [row] = await db.q<{ ours: number; others: number }>(
    `select count(*) filter (where usename = $1)::int as ours,
            count(*) filter (where usename <> $1 and application_name not like '%listener%')::int as others
       from pg_stat_activity where datname = current_database() and application_name like 'outbox-mailer%'`,
    [ROLE],
  )
  return row!.ours > 0 && row!.others === 0
    ? []
    : [
        `the mailers' sessions: ${row!.ours} of ${ROLE}, ${row!.others} of another role (not a listener)`,
      ]
}

/** Every mailer's log line naming a refused right (SQLSTATE 42501), as problems: the guide's grants must be enough. */
export function refusedRights(mailers: readonly Mailer[]): string[] {
  const problems: string[] = []
  for (const m of mailers) {
    const refused = readFileSync(m.logPath, 'utf8')
      .split('\n')
      .filter((line) => line.includes('42501') || /permission denied/i.test(line))
    if (refused.length > 0)
      problems.push(`${m.name}: ${refused.length} lines name a refused right, first: ${refused[0]}`)
  }
  return problems
}
