// Which Postgres versions the service is tested on, and check-config's warning for a server older than those.

/**
 * The oldest major version the suites have passed on: CI runs them on 18 and 17; 16 and 15 were run
 * by hand (migrations, claims, pauses, probes, the API). Older servers are not refused (14 takes the
 * migrations), only untested.
 */
export const OLDEST_TESTED_POSTGRES = 15

/** A `warning:` line for a server (its server_version_num, e.g. 140023) older than OLDEST_TESTED_POSTGRES; null for any other. */
export function untestedVersionWarning(database: string, versionNum: number): string | null {
  const major = Math.floor(versionNum / 10_000)
  if (!Number.isInteger(major) || major >= OLDEST_TESTED_POSTGRES) return null
  return `warning: database "${database}" runs PostgreSQL ${major}, older than ${OLDEST_TESTED_POSTGRES}, the oldest version outbox-mailer is tested on: upgrade it, or run the tests on it first (README, "Postgres versions")`
}
