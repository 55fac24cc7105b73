// `bun run dev`'s environment (the shell's settings, but its own database, transport and address) and its banner saying where things are.

import { mailFromProblem } from './config/sender-mailbox.ts'
import type { Config } from './config.ts'
import { AppError, describeError } from './errors.ts'
import { listenRefusal } from './http-listen.ts'

/** The embedded Postgres's port unless DEV_POSTGRES_PORT says otherwise: fixed, so the banner's URL holds between runs. */
const DEV_POSTGRES_PORT = 54329

interface DevPlaces {
  /** The embedded database's URL. */
  url: string
  mailDir: string
  port: number
}

/**
 * A shell that also deploys holds the real DATABASE_URL, LISTEN_DATABASE_URL or MAILER_DATABASES
 * (the deploy guide checks the configuration with them exported): dev must not listen on, or drain,
 * any database but its embedded one, so every database setting is replaced, not just DATABASE_URL.
 */
export function devEnvironment(
  env: Record<string, string | undefined>,
  places: DevPlaces,
): Record<string, string | undefined> {
  const { MAILER_DATABASES: _several, ...rest } = env
  return {
    ...rest,
    DATABASE_URL: places.url,
    LISTEN_DATABASE_URL: places.url,
    MAIL_TRANSPORT: 'file',
    MAIL_FILE_DIR: places.mailDir,
    // The shell's sender when the file transport can write it as From; a deployment's Graph user
    // id (a GUID) cannot be, and must not stop dev from starting.
    MAIL_FROM:
      env.MAIL_FROM && mailFromProblem(env.MAIL_FROM, 'file') === null
        ? env.MAIL_FROM
        : 'outbox@example.com',
    PORT: String(places.port),
    HOST: '127.0.0.1',
  }
}

/**
 * What the banner says of the API. The shell's API_JWT_SECRET (or API_JWKS_URL) stays in force, so
 * a token can be tried locally; saying "no API auth" then sent every request to a 401 unexplained.
 */
export function devAuthNote(config: Config): string {
  if (config.api.jwtSecret) return 'API auth on: bearer tokens signed with your API_JWT_SECRET'
  if (config.api.jwksUrl) return 'API auth on: bearer tokens from your API_JWKS_URL'
  return 'no API auth'
}

/**
 * Where the embedded Postgres listens: one port per checkout, so a second checkout running `dev`
 * at the same time (another engineer on the machine) needs DEV_POSTGRES_PORT to start at all.
 * 0 is any free port, chosen as Postgres starts (Postgres itself takes no 0): the banner's URL
 * then changes from run to run.
 */
export function devPostgresPort(env: Record<string, string | undefined>): number {
  const raw = env.DEV_POSTGRES_PORT?.trim()
  if (!raw) return DEV_POSTGRES_PORT
  const port = Number(raw)
  if (!/^\d+$/.test(raw) || port > 65535) {
    throw new AppError(
      'config_invalid',
      'DEV_POSTGRES_PORT: must be a port number (1-65535), or 0 for any free one',
    )
  }
  return port
}

/**
 * What `bun run dev` says when its embedded Postgres did not start (`message`, the server's own
 * lines): the two a developer meets, the data directory or the port held by another Postgres, with
 * what to do; anything else as it came.
 */
export function embeddedStartFailure(message: string, port: number): string {
  const lead = 'the embedded Postgres did not start: '
  const holder = /another postmaster \(PID (\d+)\)/.exec(message)?.[1]
  if (holder) {
    return `${lead}another Postgres (PID ${holder}) is running on this checkout's data: another \`bun run dev\` of this checkout, or one that was killed and left its Postgres behind. Stop that dev (Ctrl+C in its terminal) or that Postgres (\`kill ${holder}\`), then start again.`
  }
  if (/Address already in use/i.test(message)) {
    // DEV_POSTGRES_PORT=0: every free port chosen was taken before Postgres bound it.
    if (port === 0)
      return `${lead}the free ports chosen were each taken by another program before it bound them: start again.`
    return `${lead}port ${port} is taken (another checkout's \`bun run dev\`?): give this one another, DEV_POSTGRES_PORT=${port + 10} bun run dev.`
  }
  return `${lead}${message}`
}

/**
 * What `bun run dev` says when its engine or API did not start (serve threw): the error's own line
 * (listen's, for a held port), and for a held port what to do (8080, dev's default, is a common one
 * to find taken): the same variable, the next port.
 */
export function devServeFailure(e: unknown): string {
  const refused = listenRefusal(e)
  if (refused === null) return describeError(e)
  // dev sets HOST itself (127.0.0.1, devEnvironment): of the variables listen names, only the
  // port's is the shell's to change, so it is named alone.
  const line = describeError(e).replace(`(${refused.variables})`, `(${refused.portVariable})`)
  if (refused.code === 'EADDRINUSE') {
    return `${line}; stop it, or give dev another: ${refused.portVariable}=${refused.port + 1} bun run dev`
  }
  return line
}

/**
 * What `bun run dev` says when its embedded Postgres exited under it (killed, out of memory, its data
 * directory removed) and dev stops: how it ended, and where the server's log says why.
 */
export function embeddedExitLine(
  exit: { code: number | null; signal: string | null },
  logPath: string | null,
): string {
  const how = exit.signal
    ? `signal ${exit.signal}`
    : exit.code === null
      ? 'how unknown'
      : `exit code ${exit.code}`
  const where = logPath ? `its log is ${logPath}` : 'it kept no log'
  return `the embedded Postgres exited (${how}) while dev ran, so dev stops: ${where}. Start again with \`bun run dev\`.`
}

interface DevBannerPlaces {
  /** The embedded database's URL. */
  url: string
  mailDir: string
  port: number
  /** /metrics' own port as bound (METRICS_PORT=0 is the system's choice), null when on `port`. */
  metricsPort: number | null
  /** What to delete to start over. */
  dataDir: string
  /** Where the embedded Postgres's log goes, if anywhere. */
  postgresLog: string | null
}

/** What `bun run dev` prints once it is set up: where everything is, and how to try it. */
export function devBanner(config: Config, p: DevBannerPlaces): string {
  // The shell's METRICS_PORT stays in force (as in a deployment): /metrics is then there only.
  const metricsPort = p.metricsPort ?? config.http.metricsPort
  const metrics =
    metricsPort === null
      ? `http://localhost:${p.port}/metrics`
      : `http://localhost:${metricsPort}/metrics (METRICS_PORT; not on ${p.port})`
  return `
outbox-mailer is running (dev mode: embedded Postgres, file transport, ${devAuthNote(config)})

  database    ${p.url}
  mail out    ${p.mailDir}/outbox-<id>.eml
  API docs    http://localhost:${p.port}/docs
  readiness   http://localhost:${p.port}/readyz
  metrics     ${metrics}

Try it: insert an inquiry and watch a new .eml appear in ./mail-out within a second:

  psql '${p.url}' -c "insert into public.inquiries (name, email, message) values ('Grace Hopper', 'grace@example.com', 'Found a bug')"

or enqueue directly:

  psql '${p.url}' -c "select mailer.enqueue_email('{\\"to\\":\\"you@example.com\\",\\"subject\\":\\"Hi\\",\\"text\\":\\"Hello\\"}')"

Stop with Ctrl+C (data stays in ${p.dataDir}; delete it to start over).${p.postgresLog ? `\nPostgres's own log: ${p.postgresLog}` : ''}
`
}
