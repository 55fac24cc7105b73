// The command line: parses arguments, loads configuration, runs a command and returns its exit code.
import { checkConfig } from './check-config.ts'
import { type Config, ENV_VARS, loadConfig } from './config.ts'
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
  outbox-mailer send-test --to ADDRESS          send one test message with the configured transport
  outbox-mailer check-config [--connect] [--role all|worker|api]
                                                validate the environment; --connect also reaches the
                                                databases and fetches a Graph token
  outbox-mailer --version | --help

Exit codes: 0 ok, 1 failure, 2 bad usage or configuration, 3 database schema missing, outdated or newer.

Environment (every variable is validated at start):
${ENV_VARS.map((v) => `  ${v.name.padEnd(30)} ${v.meaning} (default: ${v.default})`).join('\n')}
`

/** The value of `--name value` or `--name=value`. */
function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1)
}

function parseRole(argv: string[]): Role {
  const value = flag(argv, '--role')
  if (value === undefined) return 'all'
  if (value === 'all' || value === 'worker' || value === 'api') return value
  throw new AppError('config_invalid', `--role must be all, worker or api (got "${value}")`)
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === '--version' || command === '-v' || command === 'version') {
    console.log(VERSION)
    return EXIT.ok
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP)
    return command === undefined ? EXIT.usage : EXIT.ok
  }
  if (command === 'check-config') {
    let role: Role
    try {
      role = parseRole(rest)
    } catch (e) {
      console.error(describeError(e))
      return EXIT.usage
    }
    // Reports every problem instead of stopping at the first; usable in CI and before a deploy.
    const r = await checkConfig(process.env, { connect: rest.includes('--connect'), role })
    for (const c of r.checks) console.log(c.startsWith('warning: ') ? c : `ok: ${c}`)
    for (const p of r.problems) console.error(`problem: ${p}`)
    console.log(r.ok ? 'configuration OK' : `${r.problems.length} problem(s)`)
    return r.ok ? EXIT.ok : EXIT.usage
  }
  let config: Config
  try {
    config = loadConfig(process.env, { requireDatabase: command !== 'send-test' })
  } catch (e) {
    console.error(describeError(e))
    return EXIT.usage
  }
  const log = createLogger(config.logLevel)
  try {
    switch (command) {
      case 'migrate': {
        for (const d of config.databases) {
          const r = await migrate({ url: d.listenUrl, log: log.child({ db: d.name }) })
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
        return await runUntilSignalled(config, { role: parseRole(rest), log })
      case 'send-test':
        return await sendTest(config, { to: flag(rest, '--to'), from: flag(rest, '--from') }, log)
      default:
        console.error(`unknown command "${command}"; see outbox-mailer --help`)
        return EXIT.usage
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

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)))
}
