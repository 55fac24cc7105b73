// A database URL that sets its own application_name: which URLs do, and what serve and check-config say of it.
import { parse } from 'pg-connection-string'
import { type DatabaseConfig, databaseUrls } from './database-list.ts'

/**
 * Follows the variable's name. Our sessions keep our names whatever the URL says (session-settings):
 * `status`, DESIGN.md and the docs' pg_stat_activity queries find them by these. Said at each start,
 * so that a name the operator chose is not dropped without a word.
 */
export const URL_APPLICATION_NAME_WARNING =
  'sets application_name, which outbox-mailer does not take: its sessions name themselves outbox-mailer, and outbox-mailer:listener for the LISTEN session (as status and pg_stat_activity queries find them)'

/** The databases' URLs that set application_name, by database and variable (each URL once). */
export function urlsNamingApplication(
  databases: readonly DatabaseConfig[],
): { db: string; variable: string }[] {
  return databaseUrls(databases)
    .filter((u) => parse(u.url).application_name)
    .map(({ db, variable }) => ({ db, variable }))
}
