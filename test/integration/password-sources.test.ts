// Where a database URL without a password finds one: PGPASSWORD, and (node-postgres 8 only) a password file, as README's Configuration says.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const saved = { PGPASSWORD: process.env.PGPASSWORD, PGPASSFILE: process.env.PGPASSFILE }
let dir: string | null = null
afterEach(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
  if (dir) await rm(dir, { recursive: true, force: true })
  dir = null
})

/** The test database's URL and its password, apart. */
function withoutPassword(): { url: string; password: string } {
  const u = new URL(t.url)
  const password = decodeURIComponent(u.password)
  u.password = ''
  return { url: u.toString(), password }
}

/** What a statement on a pool of that URL answers: its value, or the connection's error. */
async function answer(url: string): Promise<string> {
  const h = openDb({ name: 'default', url, log: silentLogger })
  try {
    const { rows } = await h.pool.query<{ v: string }>("select 'answered' as v")
    return rows[0]!.v
  } catch (err) {
    return `refused: ${(err as Error).message}`
  } finally {
    await h.close()
  }
}

test('a URL without a password is refused without one, and connects with PGPASSWORD', async () => {
  const { url, password } = withoutPassword()
  delete process.env.PGPASSWORD
  // A file that names no password for this server: nothing comes from one.
  dir = await mkdtemp(join(tmpdir(), 'outbox-pgpass-'))
  process.env.PGPASSFILE = join(dir, 'absent')
  expect(await answer(url)).toStartWith('refused: ')
  process.env.PGPASSWORD = password
  expect(await answer(url)).toBe('answered')
})

test('a URL without a password connects with a password file (PGPASSFILE): node-postgres 8 reads it, 9 will not', async () => {
  const { url, password } = withoutPassword()
  delete process.env.PGPASSWORD
  dir = await mkdtemp(join(tmpdir(), 'outbox-pgpass-'))
  const file = join(dir, 'pgpass')
  // host:port:database:user:password, ':' and '\' escaped; a file others may read is ignored.
  await writeFile(file, `*:*:*:*:${password.replaceAll('\\', '\\\\').replaceAll(':', '\\:')}\n`)
  await chmod(file, 0o600)
  process.env.PGPASSFILE = file
  // pg@9 drops this (brianc/node-postgres#3632): when this fails after an upgrade, README's
  // Configuration must say a password file is not read.
  expect(await answer(url)).toBe('answered')
})
