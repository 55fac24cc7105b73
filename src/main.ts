// The command line: parses arguments, loads configuration, runs a command and returns its exit code.
import { checkConfig } from './check-config.ts'
import { ENV_VARS } from './config/env-vars.ts'
import { type Config, loadConfig } from './config.ts'
import { migrate } from './db/migrate.ts'
import { AppError, describeError, EXIT, isAppError } from './errors.ts'
import { createLogger } from './log.ts'
import { sendTest } from './send-test.ts'
import { type Role, runUntilSignalled } from './serve.ts'
import { VERSION } from './version.ts'

const HELP = `outbox-mailer ${VERSION}: Postgres outbox rows in, e-mail out through Microsoft Graph.

Usage:
  outbox-mailer serve [--role all|worker|api]   run the workers and/or the HTTP API (default: all)
  outbox-mailer migrate                         apply the embedded schema migrations to every database
  outbox-mailer send-test --to ADDRESS [--from ADDRESS]
                                                send one test message with the configured transport
  outbox-mailer check-config [--connect] [--role all|worker|api]
                                                validate the environment; --connect also reaches the
                                                databases and fetches a Graph token
  outbox-mailer --version | --help | COMMAND --help

Arguments a command does not know are refused (exit 2), never ignored.

Exit codes: 0 ok, 1 failure, 2 bad usage or configuration, 3 database schema missing, outdated or newer.

Environment (every variable is validated at start):
${ENV_VARS.map((v) => `  ${v.name.padEnd(30)} ${v.meaning} (default: ${v.default})`).join('\n')}
`

/** What a command accepts: its usage line, and each flag's kind (a switch, or one that takes a value). */
interface CommandSpec {
  usage: string
  flags: Readonly<Record<string, 'switch' | 'value'>>
}

const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  serve: { usage: 'outbox-mailer serve [--role all|worker|api]', flags: { '--role': 'value' } },
  migrate: { usage: 'outbox-mailer migrate', flags: {} },
  'send-test': {
    usage: 'outbox-mailer send-test --to ADDRESS [--from ADDRESS]',
    flags: { '--to': 'value', '--from': 'value' },
  },
  'check-config': {
    usage: 'outbox-mailer check-config [--connect] [--role all|worker|api]',
    flags: { '--connect': 'switch', '--role': 'value' },
  },
}

type Parsed =
  | { kind: 'help'; text: string; exit: number }
  | { kind: 'version' }
  | { kind: 'run'; command: string; flags: ReadonlyMap<string, string> }

const usageError = (message: string, usage?: string) =>
  new AppError(
    'config_invalid',
    `${message}\n${usage ? `usage: ${usage}` : 'see outbox-mailer --help'}`,
  )

/**
 * Checks the whole command line before anything runs: an argument a command does not know must
 * never be ignored, since a `--help` or `--dry-run` taken for nothing would migrate or serve for real.
 */
export function parseArgs(argv: readonly string[]): Parsed {
  const [command, ...rest] = argv
  if (command === '--help' || command === '-h' || command === 'help') {
    if (rest.length === 0) return { kind: 'help', text: HELP, exit: EXIT.ok }
    const spec = COMMANDS[rest[0]!]
    if (rest.length === 1 && spec)
      return { kind: 'help', text: `usage: ${spec.usage}`, exit: EXIT.ok }
    throw usageError(`help takes at most one command name (got "${rest.join(' ')}")`)
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    if (rest.length > 0) throw usageError(`--version takes no arguments (got "${rest[0]}")`)
    return { kind: 'version' }
  }
  // Bare, the binary shows what it can do, but a script that forgot its command must not pass.
  if (command === undefined) return { kind: 'help', text: HELP, exit: EXIT.usage }
  const spec = COMMANDS[command]
  if (!spec) {
    throw usageError(
      command.startsWith('-') ? `unknown option "${command}"` : `unknown command "${command}"`,
    )
  }
  // Asked anywhere, help wins over every other argument: it never runs the command.
  if (rest.includes('--help') || rest.includes('-h')) {
    return { kind: 'help', text: `usage: ${spec.usage}`, exit: EXIT.ok }
  }
  const flags = new Map<string, string>()
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    const eq = arg.indexOf('=')
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg
    const kind = spec.flags[name]
    if (kind === undefined) {
      throw usageError(
        arg.startsWith('-')
          ? `${command}: unknown option "${name}"`
          : `${command}: unexpected argument "${arg}"`,
        spec.usage,
      )
    }
    if (flags.has(name)) throw usageError(`${command}: ${name} is given twice`, spec.usage)
    let value: string | undefined
    if (kind === 'switch') {
      if (eq > 0) throw usageError(`${command}: ${name} takes no value`, spec.usage)
      value = ''
    } else if (eq > 0) {
      value = arg.slice(eq + 1)
    } else {
      const next = rest[i + 1]
      // A value that looks like an option is a forgotten value, not a value: `--role --connect`.
      if (next !== undefined && !next.startsWith('-')) {
        value = next
        i++
      }
    }
    if (value === undefined || (kind === 'value' && value === '')) {
      throw usageError(`${command}: ${name} needs a value`, spec.usage)
    }
    flags.set(name, value)
  }
  return { kind: 'run', command, flags }
}

function parseRole(value: string | undefined): Role {
  if (value === undefined) return 'all'
  if (value === 'all' || value === 'worker' || value === 'api') return value
  throw new AppError('config_invalid', `--role must be all, worker or api (got "${value}")`)
}

export async function main(argv: string[]): Promise<number> {
  let parsed: Parsed
  let role: Role
  try {
    parsed = parseArgs(argv)
    role = parsed.kind === 'run' ? parseRole(parsed.flags.get('--role')) : 'all'
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
  if (command === 'check-config') {
    // Reports every problem instead of stopping at the first; usable in CI and before a deploy.
    const r = await checkConfig(process.env, { connect: flags.has('--connect'), role })
    for (const c of r.checks) console.log(c.startsWith('warning: ') ? c : `ok: ${c}`)
    for (const p of r.problems) console.error(`problem: ${p}`)
    console.log(r.ok ? 'configuration OK' : `${r.problems.length} problem(s)`)
    return r.ok ? EXIT.ok : EXIT.usage
  }
  let config: Config
  try {
    // migrate sends nothing: asking it for the transport's settings (MAIL_FROM, the Graph credential)
    // would refuse a job that holds only the database URL, as `serve --role api` is not refused.
    config = loadConfig(process.env, {
      requireDatabase: command !== 'send-test',
      role: command === 'migrate' ? 'api' : role,
    })
  } catch (e) {
    console.error(describeError(e))
    return EXIT.usage
  }
  const log = createLogger(config.logLevel)
  try {
    switch (command) {
      case 'migrate': {
        for (const d of config.databases) {
          const r = await migrate({ url: d.listenUrl, log: log.child({ db: d.name }) }).catch(
            (e: unknown) => {
              throw namedForDatabase(d.name, e)
            },
          )
          const newer = r.newer.length
            ? `; it also has ${r.newer.join(', ')} from a newer release, which this one works with`
            : ''
          console.log(
            `${d.name}: ${r.applied.length ? `applied ${r.applied.join(', ')}` : 'up to date'} (schema version ${r.version}${newer})`,
          )
        }
        return EXIT.ok
      }
      case 'serve':
        return await runUntilSignalled(config, { role, log })
      case 'send-test':
        return await sendTest(config, { to: flags.get('--to'), from: flags.get('--from') }, log)
      default:
        throw new AppError('internal', `command "${command}" is parsed but not run`)
    }
  } catch (e) {
    console.error(describeError(e))
    if (isAppError(e, 'config_invalid')) return EXIT.usage
    if (
      isAppError(e) &&
      ['schema_missing', 'schema_outdated', 'schema_ahead', 'migration_checksum_mismatch'].includes(
        e.code,
      )
    ) {
      return EXIT.schema
    }
    return EXIT.failure
  }
}

/** With several databases, an error that does not say which one leaves the operator guessing. */
function namedForDatabase(db: string, e: unknown): Error {
  const message = `${db}: ${describeError(e)}`
  // The code is kept: it decides the exit code (a schema verdict is 3, not 1).
  return isAppError(e)
    ? new AppError(e.code, message, e.details, { cause: e })
    : new Error(message, { cause: e })
}

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)))
}
