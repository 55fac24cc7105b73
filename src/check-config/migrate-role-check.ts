// Migrate role check: whether the role migrate (the release command) runs as, a database's LISTEN URL's or, without one, its URL's, may create or change schema mailer.
import type pg from 'pg'
import { migrateRoleAdvice } from '../db/migrate-privilege.ts'
import { PERMISSION_DENIED_SQLSTATE } from '../db/sqlstate.ts'
import { describe, type Findings } from './findings.ts'

/**
 * Read from the catalog, changing nothing. Invariant: a role may change the schema when it has the
 * privileges of its owner (itself, a role it inherits, or a superuser: pg_has_role's USAGE), and
 * before the first migrate when it may create schemas in the database (has_database_privilege).
 */
async function readMayMigrate(
  client: Pick<pg.Client, 'query'>,
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
 * `shared`: migrate runs over the service's URL, the direct URL being unset (`unset`: migrate falls
 * back to it) or given as the same URL (`same`); a role that may not migrate is then a warning
 * (serve runs as it; a team may migrate by hand with the owner's URL).
 */
export async function checkMigrateRole(
  client: Pick<pg.Client, 'query'>,
  where: string,
  variables: { listen: string; url: string },
  shared: false | 'unset' | 'same' = false,
): Promise<{ problem: string } | { check: string }> {
  const r = await readMayMigrate(client)
  const why =
    shared === 'same' ? `${variables.listen} is this same URL` : `${variables.listen} is unset`
  const over = shared === 'same' ? 'over it' : 'over this URL'
  if (r.may)
    return {
      check: `${where}: role ${r.role} may change the mailer schema, as migrate does${shared ? ` (${why}: migrate runs ${over})` : ''}`,
    }
  const would = `migrate, the release command, runs ${shared ? over : 'over this URL'} and would fail (SQLSTATE ${PERMISSION_DENIED_SQLSTATE}): ${migrateRoleAdvice(r.role, r.database, variables)}`
  if (shared) return { check: `warning: ${where}: ${why}, so ${would}` }
  return { problem: `${where}: ${would}` }
}

/** checkMigrateRole's answer added to `out`: its problem or its check, or that the role could not be read. */
export async function noteMigrateRole(
  out: Findings,
  ...args: Parameters<typeof checkMigrateRole>
): Promise<void> {
  try {
    const r = await checkMigrateRole(...args)
    if ('problem' in r) out.problems.push(r.problem)
    else out.checks.push(r.check)
  } catch (e) {
    out.problems.push(`${args[1]}: whether its role may migrate could not be read: ${describe(e)}`)
  }
}
