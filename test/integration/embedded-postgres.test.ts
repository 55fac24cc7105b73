import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres } from '../../src/embedded-postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const cleanup: string[] = []
afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true })
})

// `bun run dev` from a clone under `mktemp -d` (mode 0700): as root, Postgres runs as the postgres
// user, which cannot enter the checkout, so the data goes to the fallback; otherwise it stays put.
test('a data directory under a private parent falls back where Postgres can reach it', async () => {
  const privateParent = await mkdtemp(join(tmpdir(), 'outbox-private-'))
  const fallbackParent = `${privateParent}-fallback`
  cleanup.push(privateParent, fallbackParent)
  const dir = join(privateParent, '.data', 'postgres')
  const fallbackDir = join(fallbackParent, 'postgres')
  const server = await startEmbeddedPostgres({ dir, fallbackDir, persistent: false, fast: true })
  try {
    expect(server.dir).toBe(process.getuid?.() === 0 ? fallbackDir : dir)
    const client = new pg.Client({ connectionString: server.url() })
    await client.connect()
    const r = await client.query<{ dir: string }>("select current_setting('data_directory') as dir")
    await client.end()
    expect(r.rows[0]!.dir).toBe(server.dir)
  } finally {
    await server.stop()
  }
})
