// unknownVariables: a variable meant for outbox-mailer that it does not read is found and named, others' variables are left alone.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { ENV_VARS } from '../../src/config/env-vars.ts'
import { unknownVariables, unknownVariableText } from '../../src/config/unknown-variables.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('a misspelt or made-up variable is found, with the one it most likely meant', () => {
  const found = unknownVariables({
    GRAPH_MAILBOX_LOOKUPS: 'true',
    MAILER_DATABASE: '[]',
    WORKER_CONCURENCY: '3',
    MAIL_FORM: 'a@example.com',
    DATABSE_URL: 'postgres://h/db',
    database_url: 'postgres://h/db',
    LOG_LEVL: 'debug',
    GRAPH_SECRET: 'x',
    MIGRATE_DEADLINE: '300',
  })
  expect(found).toEqual([
    { name: 'DATABSE_URL', meant: 'DATABASE_URL' },
    { name: 'GRAPH_MAILBOX_LOOKUPS', meant: 'GRAPH_MAILBOX_LOOKUP' },
    { name: 'GRAPH_SECRET', meant: null },
    { name: 'LOG_LEVL', meant: 'LOG_LEVEL' },
    { name: 'MAILER_DATABASE', meant: 'MAILER_DATABASES' },
    { name: 'MAIL_FORM', meant: 'MAIL_FROM' },
    { name: 'MIGRATE_DEADLINE', meant: null },
    { name: 'WORKER_CONCURENCY', meant: 'WORKER_CONCURRENCY' },
    { name: 'database_url', meant: 'DATABASE_URL' },
  ])
})

test('every variable it reads, and the platform’s and the shell’s, pass unnamed', () => {
  const env: Record<string, string> = Object.fromEntries(ENV_VARS.map((v) => [v.name, 'x']))
  for (const name of [
    'PATH',
    'HOME',
    'HOSTNAME',
    'PWD',
    'TERM',
    'USER',
    'SHELL',
    'LANG',
    'TZ',
    'MAIL',
    'FLY_APP_NAME',
    'FLY_REGION',
    'FLY_MACHINE_ID',
    'FLY_PRIVATE_IP',
    'PRIMARY_REGION',
    'MIMALLOC_PURGE_HOLES',
    'BUN_INSTALL',
    'NODE_ENV',
    'NODE_EXTRA_CA_CERTS',
    'SSL_CERT_FILE',
    'PGHOST',
    'PGPASSWORD',
    'PGSSLMODE',
    'TEST_DATABASE_URL',
    'DEV_POSTGRES_PORT',
    'CHAOS_SEED',
    'HTTP_PROXY',
    'NO_PROXY',
    'LOG_FORMAT',
  ]) {
    env[name] = 'x'
  }
  expect(unknownVariables(env)).toEqual([])
  // Unset is not set.
  expect(unknownVariables({ GRAPH_MAILBOX_LOOKUPS: undefined })).toEqual([])
})

test('the sentence names the variable and never its value', () => {
  const secret = 'cs-very-secret-value'
  const [v] = unknownVariables({ GRAPH_CLIENT_SECRETS: secret })
  const text = unknownVariableText(v!)
  expect(text).toBe(
    'GRAPH_CLIENT_SECRETS is set, but outbox-mailer reads no variable of that name: it is ignored (did you mean GRAPH_CLIENT_SECRET?)',
  )
  expect(text).not.toContain(secret)
  expect(unknownVariableText({ name: 'GRAPH_SECRET', meant: null })).toContain(
    '`outbox-mailer --help` lists those it reads',
  )
})
