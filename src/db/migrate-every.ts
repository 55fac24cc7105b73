// `outbox-mailer migrate`: every configured database migrated in turn, each one's result printed, the exit code the first failure's.
import { urlVariable } from '../config/database-list.ts'
import type { Config } from '../config.ts'
import { AppError, describeError, EXIT, exitCodeOf, isAppError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { withLoginAdvice } from './login-refusal.ts'
import { migrate } from './migrate.ts'
import { migrateDeadline } from './migrate-deadline.ts'
import { withMigratePrivilegeAdvice } from './migrate-privilege.ts'
import { withTlsAdvice } from './tls-failure.ts'
import { withUnreachableAdvice } from './unreachable-cause.ts'

/**
 * Each database is tried, whatever the ones before it did: one down (or newer than this binary)
 * must not leave the others unmigrated, and a release job that stopped at it would name only it.
 * A result on stdout, a failure on stderr, then a line counting the failures; the exit code is the
 * first failure's (2 a transaction pooler or an encoding refused, 3 a schema verdict, 1 any other).
 * One deadline for the whole run (Fly's release_command_timeout bounds the run, not a database): a
 * database it passes in names where it stopped, and those after it are not begun.
 */
export async function migrateEvery(
  config: Config,
  log: Logger,
  print: { out: (line: string) => void; err: (line: string) => void } = {
    out: console.log,
    err: console.error,
  },
  /** --deadline's, over the configuration's MIGRATE_DEADLINE_SECONDS; 0 is none. */
  deadlineSeconds: number = config.migrate.deadlineSeconds,
): Promise<number> {
  const deadline = migrateDeadline(deadlineSeconds)
  const failed: { name: string; exit: number }[] = []
  for (const d of config.databases) {
    try {
      const r = await migrate({ url: d.listenUrl, log: log.child({ db: d.name }), deadline })
      const newer = r.newer.length
        ? `; it also has ${r.newer.join(', ')} from a newer release, which this one works with`
        : ''
      print.out(
        `${d.name}: ${r.applied.length ? `applied ${r.applied.join(', ')}` : 'up to date'} (schema version ${r.version}${newer})`,
      )
    } catch (e) {
      // The direct URL when one is set apart: the variable to fix is that one.
      const which = d.listenUrl !== d.url ? 'listenUrl' : 'url'
      const named = namedForDatabase(d.name, e, urlVariable(d, config.databases, which))
      // A role that may not change the schema: which one it was, and where the owner's URL goes.
      const message = withMigratePrivilegeAdvice(describeError(named), e, d.listenUrl, {
        listen: urlVariable(d, config.databases, 'listenUrl'),
        url: urlVariable(d, config.databases, 'url'),
      })
      print.err(message)
      // The same as a JSON line: a log pipeline (fly logs, the release command's) drops plain text.
      log.error('migration failed', {
        db: d.name,
        exitCode: exitCodeOf(named),
        code: isAppError(e) ? e.code : codeOf(e),
        reason: message,
      })
      failed.push({ name: d.name, exit: exitCodeOf(named) })
    }
  }
  if (failed.length === 0) return EXIT.ok
  if (config.databases.length > 1) {
    print.err(
      `migrate: ${failed.length} of ${config.databases.length} databases failed (${failed.map((f) => f.name).join(', ')})${failed.length < config.databases.length ? '; the others are migrated' : ''}`,
    )
  }
  return failed[0]!.exit
}

/**
 * With several databases, an error that does not say which one leaves the operator guessing. One of
 * the driver's (no connection, a login refused) also names the variable whose URL it used, and a
 * login refusal its cause and what to check; a verdict of ours (a schema newer) needs neither.
 */
function namedForDatabase(db: string, e: unknown, variable: string): Error {
  const message = isAppError(e)
    ? `${db}: ${describeError(e)}`
    : `${db} (${variable}): ${withUnreachableAdvice(withTlsAdvice(withLoginAdvice(describeError(e), e), e), e)}`
  // The code is kept: it decides the exit code (a schema verdict is 3, not 1).
  return isAppError(e)
    ? new AppError(e.code, message, e.details, { cause: e })
    : new Error(message, { cause: e })
}

/** The driver's or the server's code (ECONNREFUSED, a SQLSTATE), when the error has one. */
function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
