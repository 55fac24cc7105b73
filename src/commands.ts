// Each command's flags, environment, exit codes and example: the table parsing refuses by and `COMMAND --help` prints (command-help.ts).
import type { CommandSpec } from './command-spec.ts'

const DATABASES = ['DATABASE_URL', 'LISTEN_DATABASE_URL', 'MAILER_DATABASES']
const CREDENTIAL = [
  'GRAPH_TENANT_ID',
  'GRAPH_CLIENT_ID',
  'GRAPH_CERTIFICATE',
  'GRAPH_CERTIFICATE_FILE',
  'GRAPH_PRIVATE_KEY',
  'GRAPH_PRIVATE_KEY_FILE',
  'GRAPH_CLIENT_SECRET',
]
/** What sending reads: the transport, its sender mailboxes and Graph's credential. */
const TRANSPORT = [
  'MAIL_TRANSPORT',
  'MAIL_FILE_DIR',
  'MAIL_FROM',
  'MAIL_FROM_ALLOWED',
  ...CREDENTIAL,
  'GRAPH_AUTHORITY_URL',
  'GRAPH_API_URL',
]
/** What the API's bearer check reads (api-auth.ts). */
const API_AUTH = [
  'API_JWT_SECRET',
  'API_JWT_SECRET_PREVIOUS',
  'API_JWKS_URL',
  'API_JWT_ISSUER',
  'API_JWT_AUDIENCE',
]
const ROLE = { kind: 'value', shown: '--role all|worker|api', does: '' } as const
const CONFIG_EXIT = 'bad usage or configuration (the line says which variable or flag)'
/** An error nothing caught ends these commands at once (uncaught-exit.ts), no report printed. */
const UNCAUGHT_EXIT = 'an error nothing caught (a bug), said on stderr; no report printed'
const SCHEMA_EXIT =
  'a database schema missing, outdated or newer, or a migration it applied edited since'

export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  serve: {
    usage: 'outbox-mailer serve [--role all|worker|api]',
    does: 'Runs the workers that send the outbox rows and/or the HTTP API, until SIGTERM, SIGINT or SIGHUP (the terminal or SSH session that started it closed; in-flight sends get SHUTDOWN_GRACE_SECONDS). Logs JSON lines on stdout.',
    flags: {
      '--role': {
        ...ROLE,
        does: 'worker: send only; api: serve the HTTP API only; all (default): both',
      },
    },
    env: [
      ...DATABASES,
      ...TRANSPORT,
      'HOST',
      'PORT',
      'METRICS_PORT',
      ...API_AUTH,
      'WORKER_CONCURRENCY',
      'LOG_LEVEL',
    ],
    exits: {
      ok: 'stopped by a signal, in-flight sends settled',
      failure:
        'a failure while serving (a port held, a database lost at start); the line says which',
      usage: CONFIG_EXIT,
      schema: `${SCHEMA_EXIT}: run outbox-mailer migrate`,
    },
    example: 'outbox-mailer serve --role worker',
  },
  migrate: {
    usage: 'outbox-mailer migrate [--deadline SECONDS]',
    does: 'Applies the embedded schema migrations to every configured database (over its direct URL), then exits; safe to run again. Sends nothing, so it reads no mail or Graph variable.',
    flags: {
      '--deadline': {
        kind: 'value',
        shown: '--deadline SECONDS',
        does: 'the whole run, every database: past it, what runs is stopped (a migration in a transaction rolled back) and where said; 0 for none, as for a long index build run by hand; at most 86400 (default: MIGRATE_DEADLINE_SECONDS, 270)',
      },
    },
    env: [...DATABASES, 'MIGRATE_DEADLINE_SECONDS', 'LOG_LEVEL'],
    exits: {
      ok: 'every database migrated (or already up to date)',
      failure:
        'a database failed to migrate, or the deadline passed (the databases before it are migrated; the line says where it stopped)',
      usage: CONFIG_EXIT,
      schema: `${SCHEMA_EXIT} (a binary older than the schema)`,
    },
    example: 'outbox-mailer migrate --deadline 0',
  },
  'send-test': {
    usage: 'outbox-mailer send-test --to ADDRESS [--from ADDRESS]',
    does: 'Sends one test message with the configured transport (Graph by default) and says what came back; touches no database.',
    flags: {
      '--to': {
        kind: 'value',
        shown: '--to ADDRESS',
        does: 'the recipient (required)',
        required: true,
      },
      '--from': {
        kind: 'value',
        shown: '--from ADDRESS',
        does: 'the sender mailbox (default: MAIL_FROM); MAIL_FROM_ALLOWED must list it when set',
      },
    },
    env: TRANSPORT,
    exits: {
      ok: 'the transport accepted the message',
      failure:
        'not sent (a refusal, a credential Entra refuses, a host not reached); the line says why',
      usage: CONFIG_EXIT,
    },
    example: 'outbox-mailer send-test --to you@example.com',
  },
  'check-config': {
    usage: 'outbox-mailer check-config [--connect] [--role all|worker|api]',
    does: 'Validates the environment and reports every problem, not only the first (usable in CI and before a deploy); prints each check, then "configuration OK" or the count of problems.',
    flags: {
      '--connect': { kind: 'switch', does: 'also reach each database and fetch a Graph token' },
      '--role': { ...ROLE, does: 'check what serve --role would need (default: all)' },
    },
    env: [...DATABASES, ...TRANSPORT, ...API_AUTH],
    exits: {
      ok: 'configuration OK',
      failure: UNCAUGHT_EXIT,
      usage: 'one problem or more (each on a "problem:" line)',
    },
    example: 'outbox-mailer check-config --connect --role worker',
  },
  status: {
    usage:
      'outbox-mailer status [--json] [--max-pending-age SECONDS] [--max-send-gap SECONDS] [--timeout SECONDS]',
    does: 'Per database: reachable, schema, counts, oldest due row, claims, workers, listener, failures. Read-only; the worst database decides the exit code: 4, then 6, then 3, then 5.',
    flags: {
      '--json': { kind: 'switch', does: 'one JSON object instead of text' },
      '--max-pending-age': {
        kind: 'value',
        shown: '--max-pending-age SECONDS',
        does: 'a due row older than this needs attention (default 600)',
      },
      '--max-send-gap': {
        kind: 'value',
        shown: '--max-send-gap SECONDS',
        does: 'no row sent for longer than this while rows wait on a throttled mailbox, Graph out of reach or Entra giving no token (an outage) needs attention (default 300)',
      },
      '--timeout': {
        kind: 'value',
        shown: '--timeout SECONDS',
        does: 'bounds connecting and each statement (default 5, at most 86400)',
      },
    },
    // Its reads go over each database's url: listenUrl (LISTEN_DATABASE_URL) plays no part.
    // LEASE_SECONDS: stands for a worker whose registry entry notes none (silent twice it: not
    // live) and, with no live worker noting a longer one, bounds when an ended lease is overdue.
    // Not MAILBOX_RATE_PER_MINUTE: a pause is told from a turn by the rate the workers pace by,
    // as the gauge and /v1/stats tell it (paused-now.ts).
    env: ['DATABASE_URL', 'MAILER_DATABASES', 'LEASE_SECONDS'],
    exits: {
      ok: 'every database ok (paused mailboxes and rows held back by pacing or a pause included, while a row went within --max-send-gap: they are not due; alert on heldBackPending or pausedMailboxes.count in --json)',
      failure: UNCAUGHT_EXIT,
      usage: CONFIG_EXIT,
      schema: 'a schema missing, behind, ahead, or a migration it applied edited since',
      unreachable: 'a database unreachable (or not answering within --timeout)',
      attention:
        "mail needs attention: a due row older than --max-pending-age; no row sent for longer than --max-send-gap while rows wait on a throttled mailbox, Graph out of reach or Entra giving no token (an outage); a sender mailbox Graph refuses while rows that send from it are pending; Entra refuses a live worker's Graph credential while rows are pending; claims no worker took back; rows due and no live worker; the database takes no writes; a read that failed",
      permission:
        'the role may not read the mailer schema (a privilege refused, 42501: grant CONNECT, USAGE on schema mailer, SELECT on its tables)',
    },
    example: 'outbox-mailer status --json --max-pending-age 300',
  },
}
