// An error nothing caught in a command that runs to its end (migrate, status, check-config, send-test): said, then exit 1 at once; serve stops first instead (run-until-signalled.ts).
import { describeError, describeStack, EXIT } from './errors.ts'
import type { Logger } from './log.ts'

/**
 * Bun prints such an error as text on stderr and goes on, and the command then returned its own
 * code: migrate 0 for a run past a fault nobody knows the effect of (measured: a fault while it
 * waited for the migration lock, exit 0 once the lock came), status a report read past it. Exiting
 * at once is safe for each: migrate's transaction is rolled back as its session ends and a
 * migration run outside one completes when run again; the others only read or send one message.
 * Said on stderr always, and as a JSON line once `logTo` names the command's logger (migrate,
 * send-test: status and check-config print a report on stdout, which stays theirs).
 */
export function exitOnUncaught(command: string): { logTo(log: Logger): void } {
  let log: Logger | null = null
  const onFault = (origin: 'uncaughtException' | 'unhandledRejection', err: unknown) => {
    const stack = describeStack(err) ?? describeError(err)
    console.error(
      `${command}: uncaught error (${origin}), exiting 1${command === 'migrate' ? ' (a migration under way is not recorded: run migrate again)' : ''}: ${stack}`,
    )
    log?.error('uncaught error: exiting', {
      origin,
      err,
      stack: describeStack(err),
      exitCode: EXIT.failure,
    })
    process.exit(EXIT.failure)
  }
  process.on('uncaughtException', (err) => onFault('uncaughtException', err))
  process.on('unhandledRejection', (err) => onFault('unhandledRejection', err))
  return {
    logTo: (l) => {
      log = l
    },
  }
}
