// A variable whose value came wrapped in quotes (a dashboard's secret field, an env file, quotes inside the shell's quotes): named as such, with what to do, never taken as the value.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { loadConfig } from '../../src/config.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const tenant = randomUUID()
const graph = {
  DATABASE_URL: 'postgres://u:p@db/app',
  MAIL_TRANSPORT: 'graph',
  GRAPH_TENANT_ID: tenant,
  GRAPH_CLIENT_ID: randomUUID(),
  GRAPH_CLIENT_SECRET: `cs-${randomBytes(12).toString('hex')}`,
  MAIL_FROM: 'notifications@example.com',
}

/** What loadConfig names wrong in `env` (none when it loads). */
function configProblems(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env)
    return []
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
}

const advice =
  'which are kept as part of it: set it without them (a shell removes its own quotes; a dashboard’s secret field or an env file keeps them)'

describe('a value wrapped in quotes', () => {
  test('a tenant id in double quotes is named, where it loaded and failed only at the first token', () => {
    expect(configProblems({ ...graph, GRAPH_TENANT_ID: `"${tenant}"` })).toEqual([
      `GRAPH_TENANT_ID: its value is wrapped in double quotes, ${advice}`,
    ])
  })

  test('a database URL in single quotes is named as quoted, not as "must be a postgres:// URL"', () => {
    expect(configProblems({ ...graph, DATABASE_URL: `'${graph.DATABASE_URL}'` })).toEqual([
      `DATABASE_URL: its value is wrapped in single quotes, ${advice}`,
    ])
  })

  test('a secret in quotes is named without its value; surrounding spaces and a trailing newline still do not count', () => {
    const secret = randomBytes(32).toString('base64')
    const problems = configProblems({ ...graph, API_JWT_SECRET: ` "${secret}"\n` })
    expect(problems).toEqual([`API_JWT_SECRET: its value is wrapped in double quotes, ${advice}`])
    expect(configProblems({ ...graph, API_JWT_SECRET: `${secret}\n` })).toEqual([])
  })

  test('a quoted key or client secret is named once, not also as a missing credential', () => {
    const { GRAPH_CLIENT_SECRET, ...noSecret } = graph
    expect(configProblems({ ...graph, GRAPH_CLIENT_SECRET: `'${GRAPH_CLIENT_SECRET}'` })).toEqual([
      `GRAPH_CLIENT_SECRET: its value is wrapped in single quotes, ${advice}`,
    ])
    expect(
      configProblems({ ...noSecret, GRAPH_CERTIFICATE_FILE: '/c.pem', GRAPH_PRIVATE_KEY: '"k"' }),
    ).toEqual([`GRAPH_PRIVATE_KEY: its value is wrapped in double quotes, ${advice}`])
  })

  test('a sender written "Name" <address> is no quoted value', () => {
    expect(
      configProblems({ ...graph, MAIL_FROM: '"Notifications" <notifications@example.com>' }),
    ).toEqual([])
  })
})
