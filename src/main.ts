// The command line's entry point: parses arguments (cli-args.ts), loads configuration, runs a command, returns its exit code.
import { redactor } from './check-config/redactor.ts'
import { checkConfig } from './check-config.ts'
import { inCommand, type Parsed, parseArgs } from './cli-args.ts'
import { unknownVariables, unknownVariableText } from './config/unknown-variables.ts'
import { type Config, loadConfig } from './config.ts'
import { migrateEvery } from './db/migrate-every.ts'
import { AppError, describeError, EXIT, exitCodeOf, isAppError } from './errors.ts'
import {
  parseDeadlineSeconds,
  parseRole,
  parseSeconds,
  parseStatusTimeoutSeconds,
} from './flag-values.ts'
import { listenRefusal } from './http-listen.ts'
import { createLogger, type Logger } from './log.ts'
import { collectProcessWarnings, logProcessWarnings } from './process-warnings.ts'
import { runUntilSignalled } from './run-until-signalled.ts'
import { sendTest } from './send-test.ts'
import type { Role } from './serve-options.ts'
import { DEFAULT_MAX_SEND_GAP_SECONDS } from './status/status-report.ts'
import { type StatusOptions, status } from './status.ts'
import { exitOnUncaught } from './uncaught-exit.ts'
import { VERSION } from './version.ts'

async function main(argv: string[]): Promise<number> {
  let parsed: Parsed
  let role: Role
  let statusOptions: StatusOptions | null = null
  let deadlineSeconds: number | undefined
  try {
    parsed = parseArgs(argv)
    role = 'all'
    if (parsed.kind === 'run') {
      const { command, flags } = parsed
      // A value refused is said as parseArgs says its refusals: the command, then its usage.
      role = inCommand(command, () => parseRole(flags.get('--role')))
      deadlineSeconds = inCommand(command, () => parseDeadlineSeconds(flags.get('--deadline')))
      if (command === 'status') {
        statusOptions = inCommand(command, () => ({
          json: flags.has('--json'),
          maxPendingAgeSeconds: parseSeconds(
            '--max-pending-age',
            flags.get('--max-pending-age'),
            600,
          ),
          maxSendGapSeconds: parseSeconds(
            '--max-send-gap',
            flags.get('--max-send-gap'),
            DEFAULT_MAX_SEND_GAP_SECONDS,
          ),
          timeoutMs: parseStatusTimeoutSeconds(flags.get('--timeout')) * 1000,
        }))
      }
    }
  } catch (e) {
    console.error(describeError(e))
    return EXIT.usage
  }
  if (parsed.kind === 'version') {
    console.log(VERSION)
    return EXIT.ok
  }
  if (parsed.kind === 'help') {
    console.log(parsed.text)
    return parsed.exit
  }
  const { command, flags } = parsed
  // serve handles its own (stopping first); every other command ends at once, saying so.
  const uncaught = command === 'serve' ? null : exitOnUncaught(command)
  // status and check-config print one report on stdout (status --json one JSON object), which
  // stays theirs. A process warning (pg-connection-string's about sslmode, raised as a URL is
  // parsed) is a line of it, not raw text on stderr. From here, so that one raised while the
  // configuration is parsed is caught.
  const printsReport = command === 'status' || command === 'check-config'
  const warnings = printsReport ? collectProcessWarnings(redactor(process.env)) : null
  if (command === 'check-config') {
    // Reports every problem instead of stopping at the first; usable in CI and before a deploy.
    const r = await checkConfig(process.env, { connect: flags.has('--connect'), role })
    for (const c of r.checks) console.log(c.startsWith('warning: ') ? c : `ok: ${c}`)
    for (const w of await warnings!.settled()) console.log(`warning: ${w}`)
    for (const p of r.problems) console.error(`problem: ${p}`)
    console.log(r.ok ? 'configuration OK' : `${r.problems.length} problem(s)`)
    return r.ok ? EXIT.ok : EXIT.usage
  }
  let config: Config
  try {
    // migrate and status send nothing: asking them for the transport's settings (MAIL_FROM, the
    // Graph credential) would refuse a job that holds only the database URL, as `serve --role api`
    // is not refused.
    config = loadConfig(process.env, {
      requireDatabase: command !== 'send-test',
      role: command === 'migrate' || command === 'status' ? 'api' : role,
      servesApi: command === 'serve',
      holdsLeases: command !== 'send-test',
    })
  } catch (e) {
    console.error(describeError(e))
    // LOG_LEVEL unread (the configuration failed): an error line is written at any level.
    if (command === 'serve' || command === 'migrate') logExit(createLogger('error'), e)
    return EXIT.usage
  }
  const log = createLogger(config.logLevel)
  if (command === 'migrate' || command === 'send-test') uncaught?.logTo(log)
  // What these print is read as JSON lines. Warnings are emitted on the next tick, so one raised
  // while the configuration was parsed (pg-connection-string's about sslmode) is caught too.
  // A variable set for the service but never read (a misspelt name) is named, never its value.
  const ignored = unknownVariables(process.env)
  if (command === 'serve' || command === 'migrate' || command === 'send-test') {
    logProcessWarnings(log, redactor(process.env))
    for (const v of ignored) {
      log.warn('unknown variable ignored', { variable: v.name, didYouMean: v.meant })
    }
  }
  try {
    switch (command) {
      case 'migrate':
        return await migrateEvery(config, log, undefined, deadlineSeconds)
      case 'serve':
        return await runUntilSignalled(
          config,
          { role, log },
          // Run by a package script (`bun run start`), which forwards the terminal's signals.
          { forwardedSignals: process.env.npm_lifecycle_event !== undefined },
        )
      case 'status':
        return await status(config, process.env, statusOptions!, async () => [
          ...ignored.map(unknownVariableText),
          ...(await warnings!.settled()),
        ])
      case 'send-test':
        // --to is required (commands.ts): parseArgs refused its absence before any command ran.
        return await sendTest(config, { to: flags.get('--to')!, from: flags.get('--from') }, log)
      default:
        throw new AppError('internal', `command "${command}" is parsed but not run`)
    }
  } catch (e) {
    console.error(describeError(e))
    // A log pipeline (fly logs) parses JSON lines and drops plain text: the reason is one too,
    // on stdout, unless stdout is the report's (a consumer of status --json parsed the line).
    if (!printsReport) logExit(log, e)
    return exitCodeOf(e)
  }
}

/** Why the command ends: its exit code, the error's code when it has one, and its text. */
function logExit(log: Logger, e: unknown) {
  // A bind refused is the system's (EADDRINUSE), as its own line says: not `internal`, a bug's.
  const code =
    listenRefusal(e)?.code ?? (isAppError(e) ? e.code : (e as { code?: unknown } | null)?.code)
  log.error('exiting', {
    exitCode: exitCodeOf(e),
    code: typeof code === 'string' ? code : undefined,
    reason: describeError(e),
  })
}

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)))
}
