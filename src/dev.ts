// `bun run dev`: embedded Postgres under ./.data (or the temp directory), migrations, a demo table + trigger + template, file transport, API.
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { loadConfig } from './config.ts'
import { migrate } from './db/migrate.ts'
import { SessionClient } from './db/session-settings.ts'
import {
  devBanner,
  devEnvironment,
  devPostgresPort,
  devServeFailure,
  embeddedExitLine,
  embeddedStartFailure,
} from './dev-environment.ts'
import { startEmbeddedPostgres } from './embedded-postgres.ts'
import { EXIT } from './errors.ts'
import { createLogger } from './log.ts'
import { runUntilSignalled } from './run-until-signalled.ts'

const DATA_DIR = resolve('.data/postgres')
// As root under a private directory, Postgres's own user cannot reach ./.data: keep this checkout's
// data in the temp directory instead (one per checkout, kept between runs).
const FALLBACK_DATA_DIR = join(
  tmpdir(),
  `outbox-mailer-dev-${createHash('sha256').update(process.cwd()).digest('hex').slice(0, 12)}`,
  'postgres',
)
const MAIL_DIR = resolve('mail-out')
const PORT = Number(process.env.PORT ?? 8080)
const DATABASE = 'outbox_dev'

const DEMO_SQL = `
create table if not exists public.inquiries (
  id         bigint generated always as identity primary key,
  name       text not null,
  email      text not null,
  message    text not null,
  created_at timestamptz not null default now()
);
insert into mailer.templates (name, subject, text_body, html_body, to_addresses, reply_to)
values ('inquiry', 'New inquiry from {{name}}',
        E'{{name}} <{{email}}> wrote:\\n\\n{{message}}\\n',
        '<p><strong>{{name}}</strong> &lt;{{email}}&gt; wrote:</p><blockquote>{{message}}</blockquote>',
        array['sales@example.com'], '{{name}} <{{email}}>')
on conflict (name) do nothing;
do $$ begin
  if not exists (select 1 from pg_trigger where tgname = 'inquiries_mail') then
    create trigger inquiries_mail after insert on public.inquiries
      for each row execute function mailer.enqueue_from_row('inquiry');
  end if;
end $$;
`

/**
 * Where the embedded Postgres listens, once every problem of the shell's variables that dev reads
 * is named before it starts (exit 2, as `serve` does), not in a stack trace once it ran. The URL is
 * a stand-in: dev sets the embedded one, so no problem can be its. DEV_POSTGRES_PORT=0 (any free
 * port, known once Postgres binds it) is no port a URL can name, and the configuration refuses it:
 * the stand-in names Postgres's own then.
 */
function postgresPortOfValidConfiguration(): number {
  try {
    const port = devPostgresPort(process.env)
    const url = `postgres://postgres@127.0.0.1:${port === 0 ? 5432 : port}/${DATABASE}`
    loadConfig(devEnvironment(process.env, { url, mailDir: MAIL_DIR, port: PORT }), { dev: true })
    return port
  } catch (e) {
    console.error(`outbox-mailer dev: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(EXIT.usage)
  }
}

async function main() {
  const port = postgresPortOfValidConfiguration()
  console.log('outbox-mailer dev: starting an embedded Postgres (first start takes a few seconds)…')
  // Until the engine runs and stops on its own signals: Ctrl+C exits, and the exit stops Postgres,
  // which the terminal's signal no longer reaches.
  const duringStart = () => process.exit(130)
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
  for (const s of signals) process.on(s, duringStart)
  // Known once the data directory is chosen; the server cannot die unnoticed before it is.
  let logPath: string | null = null
  const server = await startEmbeddedPostgres({
    dir: DATA_DIR,
    fallbackDir: FALLBACK_DATA_DIR,
    // DEV_POSTGRES_PORT=0: a free one, chosen again if another process takes it before the bind.
    ...(port === 0 ? {} : { port }),
    persistent: true,
    // Ctrl+C stops dev, which stops the engine while the database still answers, then Postgres.
    ownProcessGroup: true,
    keepLog: true,
    // Serve would retry a dead database forever, saying only "could not connect": dev is a
    // foreground program, so it stops and says why. Not restarted in place: a Postgres that was
    // OOM-killed dies again, and one whose data directory was removed needs initdb, migrations and
    // the demo, which a new `bun run dev` does in seconds.
    onUnexpectedExit: (exit) => {
      console.error(`outbox-mailer dev: ${embeddedExitLine(exit, logPath)}`)
      process.exit(1)
    },
  }).catch((e: unknown) => {
    // A line that says what to do, not a stack trace: this is the quick start's first command.
    console.error(
      `outbox-mailer dev: ${embeddedStartFailure(e instanceof Error ? e.message : String(e), port)}`,
    )
    process.exit(1)
  })
  logPath = server.logPath
  console.log(`outbox-mailer dev: Postgres data in ${server.dir}`)
  const admin = new SessionClient({ connectionString: server.url('postgres') })
  await admin.connect()
  const exists = await admin.query('select 1 from pg_database where datname = $1', [DATABASE])
  if (exists.rowCount === 0) await admin.query(`create database ${DATABASE}`)
  await admin.end()
  const url = server.url(DATABASE)

  const log = createLogger((process.env.LOG_LEVEL as 'info' | undefined) ?? 'info')
  await migrate({ url, log })
  const client = new SessionClient({ connectionString: url })
  await client.connect()
  await client.query(DEMO_SQL)
  const { rows } = await client.query<{ n: string }>('select count(*) as n from public.inquiries')
  if (rows[0]?.n === '0') {
    await client.query(
      `insert into public.inquiries (name, email, message) values ('Ada Lovelace', 'ada@example.com', 'Hello! Is the analytical engine still available?')`,
    )
  }
  await client.end()

  const config = loadConfig(devEnvironment(process.env, { url, mailDir: MAIL_DIR, port: PORT }), {
    dev: true,
  })
  // The ports bound, not PORT: PORT=0 (METRICS_PORT=0) is the system's choice, known once it listens.
  const banner = (bound: { port: number; metricsPort: number | null }) =>
    devBanner(config, {
      url,
      mailDir: MAIL_DIR,
      ...bound,
      dataDir: dirname(server.dir),
      postgresLog: server.logPath,
    })
  for (const s of signals) process.removeListener(s, duringStart)
  await runUntilSignalled(
    config,
    { role: 'all', log, dev: true, onListening: (bound) => console.log(banner(bound)) },
    // `bun run dev` forwards the terminal's Ctrl+C to dev, which the terminal signalled too.
    { afterStop: () => server.stop(), forwardedSignals: true },
  ).catch(async (e: unknown) => {
    // A line that says what to do, not a stack trace (PORT's 8080 held by another program is the
    // likely one); its Postgres stopped, as Ctrl+C would.
    console.error(`outbox-mailer dev: ${devServeFailure(e)}`)
    await server.stop().catch(() => {})
    process.exit(1)
  })
}

await main()
