// deploy/README.md step 4 as an operator runs it: the secrets it sets with fly.toml's [env] are what the binary reads, and each is one the operator can use again.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseConnectionString } from 'pg-connection-string'
import { ENV_VARS } from '../../src/config/env-vars.ts'
import { loadConfig } from '../../src/config.ts'
import { generateTestCertificate } from '../support/test-certificate.ts'
import { flyEnv, ROOT, readFlyConfig } from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). Each test
// certificate is an RSA key made by openssl, seconds of CPU on a loaded machine.
setDefaultTimeout(30_000)

const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
const step4 = guide.slice(guide.indexOf('## 4. '), guide.indexOf('## 5. '))

/** The `fly secrets set` command of step 4: NAME and the value as written (quotes and all). */
function secretsSet(): Array<{ name: string; value: string }> {
  const block = /^fly secrets set[\s\S]*?```/m.exec(step4)?.[0]
  if (!block) throw new Error('deploy/README.md step 4 has no `fly secrets set` block')
  return [...block.matchAll(/^\s+([A-Z][A-Z0-9_]*)=(.*?)\s*\\?$/gm)].map((m) => ({
    name: m[1]!,
    value: m[2]!,
  }))
}

/**
 * fly.toml's [env] once step 4's edit is made: its commented-out ids uncommented "with your values"
 * (its all-zero GUIDs are placeholders, which the start refuses: the operator's own ids stand in).
 */
async function flyEnvFilledIn(): Promise<Record<string, string>> {
  const text = readFileSync(join(ROOT, 'fly.toml'), 'utf8')
  const section = /^\[env\]\n([\s\S]*?)^\[/m.exec(text)?.[1] ?? ''
  const uncommented = Object.fromEntries(
    [...section.matchAll(/^\s*#\s*([A-Z][A-Z0-9_]*)\s*=\s*"([^"]*)"/gm)].map((m) => [
      m[1]!,
      /^[0-]+$/.test(m[2]!) ? randomUUID() : m[2]!,
    ]),
  )
  return { ...flyEnv(await readFlyConfig()), ...uncommented }
}

test('step 4 sets only variables the binary reads, and with fly.toml they make a valid `serve`', async () => {
  const known = new Set(ENV_VARS.map((v) => v.name))
  const secrets = secretsSet()
  expect(secrets.map((s) => s.name)).toContain('DATABASE_URL')
  for (const { name } of secrets)
    expect({ name, known: known.has(name) }).toEqual({ name, known: true })
  const { certPem, keyPem } = await generateTestCertificate()
  // Each value as the shell would give it: the files of step 1, a URL with its password filled in.
  const shellValue = (raw: string) => {
    if (raw.includes('.crt')) return certPem
    if (raw.includes('.key')) return keyPem
    if (raw.includes('$')) return 'k'.repeat(64)
    return raw.replace(/^'|'$/g, '').replace('…', 'password')
  }
  const env = {
    ...(await flyEnvFilledIn()),
    ...Object.fromEntries(secrets.map((s) => [s.name, shellValue(s.value)])),
  }
  const config = loadConfig(env)
  expect(config.transport).toBe('graph')
  expect(config.databases[0]!.listenUrl).toContain('direct-host')
  expect(config.api.jwtSecret).not.toBeNull()
})

test('every secret step 4 sets is one the operator holds: none is generated unseen inside `fly secrets set`', () => {
  // `fly secrets list` shows digests only: a value made inside the command (`$(openssl rand …)`) is
  // one nobody has seen, and step 8 mints API tokens with API_JWT_SECRET's value.
  for (const { name, value } of secretsSet()) {
    expect({ name, generatedInside: /\$\((?!cat )/.test(value) }).toEqual({
      name,
      generatedInside: false,
    })
  }
  expect(guide).toContain("token=$(API_JWT_SECRET='…' bun -e")
})

test('step 4 for several databases: its commands leave the secrets a valid `serve` takes, each database with its direct URL', async () => {
  // As written before, it said "set MAILER_DATABASES" after the block that set DATABASE_URL and
  // LISTEN_DATABASE_URL: an operator who followed both had every start refused ("MAILER_DATABASES
  // and DATABASE_URL are both set"), and nothing said to store the list as a secret (its URLs hold
  // the passwords) rather than in fly.toml.
  const several = step4.slice(step4.indexOf('Several databases'))
  const set = /^fly secrets set --stage MAILER_DATABASES='(.*)'$/m.exec(several)
  expect(set).not.toBeNull()
  const unset = /^fly secrets unset --stage ((?:[A-Z_]+ ?)+)/m.exec(several)
  expect(unset?.[1]?.trim().split(' ')).toEqual(['DATABASE_URL', 'LISTEN_DATABASE_URL'])
  const { certPem, keyPem } = await generateTestCertificate()
  const secrets: Record<string, string> = {
    GRAPH_CERTIFICATE: certPem,
    GRAPH_PRIVATE_KEY: keyPem,
    API_JWT_SECRET: 'k'.repeat(64),
    MAILER_DATABASES: set![1]!.replaceAll('…', 'password'),
  }
  const config = loadConfig({ ...(await flyEnvFilledIn()), ...secrets })
  expect(config.databases.map((d) => [d.name, new URL(d.listenUrl).host])).toEqual([
    ['acme', 'direct-host:5432'],
    ['globex', 'direct-host:5432'],
  ])
})

test("step 4's URLs ask for TLS whose certificate and host name the driver checks, today and under node-postgres 9's reading, as its `sslmode=verify-full` bullet says", () => {
  // node-postgres 8 (pg-connection-string 2) reads require as verify-full; its SECURITY WARNING says
  // 9 gives require libpq's meaning, no check (brianc/node-postgres#3473), which uselibpqcompat=true
  // gives today: verify-full keeps the check under both readings.
  const urls = secretsSet().filter((s) => s.name.endsWith('_URL'))
  expect(urls.map((u) => u.name)).toEqual(['DATABASE_URL', 'LISTEN_DATABASE_URL'])
  const tls = (url: string) => {
    const ssl = parseConnectionString(url).ssl
    return typeof ssl === 'object' && ssl !== null
      ? {
          on: true,
          rejectUnauthorized: ssl.rejectUnauthorized ?? true,
          checkServerIdentity: 'checkServerIdentity' in ssl,
        }
      : { on: ssl === true }
  }
  const checked = { on: true, rejectUnauthorized: true, checkServerIdentity: false }
  for (const { name, value } of urls) {
    const url = value.replace(/^'|'$/g, '').replace('…', 'password')
    expect(url).toContain('sslmode=verify-full')
    expect({ name, tls: tls(url) }).toEqual({ name, tls: checked })
    expect({ name, tls: tls(`${url}&uselibpqcompat=true`) }).toEqual({ name, tls: checked })
    // The bullet's warning: require, read as node-postgres 9 reads it, checks nothing.
    const required = url.replace('sslmode=verify-full', 'sslmode=require')
    expect(tls(`${required}&uselibpqcompat=true`)).toMatchObject({
      on: true,
      rejectUnauthorized: false,
    })
  }
})
