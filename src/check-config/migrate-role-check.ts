// Migrate role check: whether the role of a database's LISTEN URL may create or change schema mailer, as migrate (the release command), which runs over that URL, must.
import type pg from 'pg'
import { migrateRoleAdvice } from '../db/migrate-privilege.ts'
import { PERMISSION_DENIED_SQLSTATE } from '../db/sqlstate.ts'

/**
 * Read from the catalog, changing nothing. Invariant: a role may change the schema when it has the
 * privileges of its owner (itself, a role it inherits, or a superuser: pg_has_role's USAGE), and
 * before the first migrate when it may create schemas in the database (has_database_privilege).
 */
async function readMayMigrate(
  client: pg.Client,
): Promise<{ role: string; database: string; may: boolean }> {
  const { rows } = await client.query<{ role: string; database: string; may: boolean }>(
    `select current_user as role, current_database() as database,
            coalesce((select pg_has_role(n.nspowner, 'USAGE') from pg_namespace n
                       where n.nspname = 'mailer'),
                     has_database_privilege(current_database(), 'CREATE')) as may`,
  )
  return rows[0]!
}

/**
 * A problem naming the role of `client`'s URL and the role and URL migrate needs instead, or a check
 * saying it may migrate. `where` names the database and its variable, as the other database checks do.
 */
export async function checkMigrateRole(
  client: pg.Client,
  where: string,
  variables: { listen: string; url: string },
): Promise<{ problem: string } | { check: string }> {
  const r = await readMayMigrate(client)
  if (r.may)
    return { check: `${where}: role ${r.role} may change the mailer schema, as migrate does` }
  return {
    problem: `${where}: migrate, the release command, runs over this URL and would fail (SQLSTATE ${PERMISSION_DENIED_SQLSTATE}): ${migrateRoleAdvice(r.role, r.database, variables)}`,
  }
}
