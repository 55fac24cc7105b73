// The command line's grammar: commands, their flags and usage, the help text; nothing a command does not know passes (flag-values.ts reads the values).
import { commandHelp } from './command-help.ts'
import { COMMANDS } from './commands.ts'
import { ENV_VARS } from './config/env-vars.ts'
import { AppError, EXIT } from './errors.ts'
import { VERSION } from './version.ts'

const HELP = `outbox-mailer ${VERSION}: Postgres outbox rows in, e-mail out through Microsoft Graph.

Usage:
  outbox-mailer serve [--role all|worker|api]   run the workers and/or the HTTP API (default: all)
  outbox-mailer migrate [--deadline SECONDS]    apply the embedded schema migrations to every database,
                                                stopping at the deadline (default 270; 0: none)
  outbox-mailer send-test --to ADDRESS [--from ADDRESS]
                                                send one test message with the configured transport
  outbox-mailer check-config [--connect] [--role all|worker|api]
                                                validate the environment; --connect also reaches the
                                                databases and fetches a Graph token
  outbox-mailer status [--json] [--max-pending-age SECONDS] [--max-send-gap SECONDS]
                [--timeout SECONDS]             per database: reachable, schema, counts, oldest due
                                                row, claims, workers, listener, failures (read-only)
  outbox-mailer --version | --help | COMMAND --help

Arguments a command does not know are refused (exit 2), never ignored.

Exit codes: 0 ok, 1 failure, 2 bad usage or configuration, 3 database schema missing, outdated or
newer, or a migration it applied edited since.
status also: 4 a database unreachable (or not answering), 5 mail needs attention (a due row older
than --max-pending-age, default 600; no row sent for longer than --max-send-gap, default 300, while
rows wait on a throttled mailbox, Graph out of reach or Entra giving no token: an outage; a sender
mailbox Graph refuses while rows that send from it are pending; Entra refuses a live worker's Graph
credential while rows are pending; claims no worker took back; rows due and no live worker; the
database takes no writes; a read that failed), 6 a database's role may not read the mailer schema
(a privilege refused, 42501).
The worst database decides: 4, then 6, then 3, then 5.

Environment (every variable is validated at start; one set that it does not read is named):
${ENV_VARS.map((v) => `  ${v.name.padEnd(30)} ${v.meaning} (default: ${v.default})`).join('\n')}
`

export type Parsed =
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
    if (rest.length === 1 && spec) return { kind: 'help', text: commandHelp(spec), exit: EXIT.ok }
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
    return { kind: 'help', text: commandHelp(spec), exit: EXIT.ok }
  }
  const flags = new Map<string, string>()
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    const eq = arg.indexOf('=')
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg
    const kind = spec.flags[name]?.kind
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
      // A negative number is a value (no option starts with a digit), refused as one: `--timeout -5`.
      if (next !== undefined && (!next.startsWith('-') || /^-\.?\d/.test(next))) {
        value = next
        i++
      }
    }
    if (value === undefined || (kind === 'value' && value === '')) {
      throw usageError(`${command}: ${name} needs a value`, spec.usage)
    }
    flags.set(name, value)
  }
  // A flag the command cannot run without is asked for here, before the environment is read: a
  // shell without the transport's variables would otherwise name those first, and this only after.
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (flag.required && !flags.has(name)) {
      const what = flag.does.replace(/\s*\(required\)$/, '')
      throw usageError(`${command}: ${flag.shown ?? name} is required (${what})`, spec.usage)
    }
  }
  return { kind: 'run', command, flags }
}

/**
 * Reads a flag's value (parseRole, parseSeconds, …) for `command`: a refusal is said as parseArgs
 * says its own, `serve: --role must be …` and the command's usage line, not the bare sentence.
 */
export function inCommand<T>(command: string, read: () => T): T {
  try {
    return read()
  } catch (e) {
    if (!(e instanceof AppError)) throw e
    throw usageError(`${command}: ${e.message}`, COMMANDS[command]?.usage)
  }
}
