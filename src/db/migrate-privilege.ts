// What `migrate` says when the role of its URL may not create or change the mailer schema (42501): that role, and the URL to give migrate instead.
import { PERMISSION_DENIED_SQLSTATE } from './sqlstate.ts'

/**
 * Whether a statement was refused 42501 (a migration's failure wraps the server's error as its
 * cause). Not a connect refused it (FATAL, CONNECT revoked): the schema is not the matter then.
 */
function privilegeRefusal(e: unknown): boolean {
  for (let c: unknown = e; c instanceof Error; c = c.cause) {
    const { code, severity } = c as { code?: unknown; severity?: unknown }
    if (code === PERMISSION_DENIED_SQLSTATE) return severity !== 'FATAL'
  }
  return false
}

/**
 * `message` with the cause and what to change when the server refused `url`'s role a privilege: a
 * team that gives migrate the service's role (the guide's `mailer_svc`, granted only its tables)
 * read "permission denied for database app" alone. `listenVariable` is where migrate's URL goes,
 * `urlVariable` where the service's role stays.
 */
export function withMigratePrivilegeAdvice(
  message: string,
  e: unknown,
  url: string,
  variables: { listen: string; url: string },
): string {
  if (!privilegeRefusal(e)) return message
  let role = 'of this URL'
  let database = '<database>'
  try {
    const u = new URL(url)
    if (u.username) role = decodeURIComponent(u.username)
    if (u.pathname.length > 1) database = decodeURIComponent(u.pathname.slice(1))
  } catch {}
  return `${message}: SQLSTATE ${PERMISSION_DENIED_SQLSTATE}, ${migrateRoleAdvice(role, database, variables)}`
}

/**
 * That `role` may not run migrate, and which role and URL to give it instead: migrate's own failure
 * and check-config --connect's look at LISTEN_DATABASE_URL say it in these words.
 */
export function migrateRoleAdvice(
  role: string,
  database: string,
  variables: { listen: string; url: string },
): string {
  return `the role ${role} may not create or change the mailer schema: migrate runs as the role that owns it (before the first migrate, one that may create schemas: grant create on database ${database} to it); set ${variables.listen} to that role's direct URL, the service's role staying in ${variables.url} (deploy guide, step 7)`
}
