// The embedded Postgres (dev mode and the tests): a data directory Postgres can reach, a server that answers and stops.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from '../../src/embedded-postgres/free-port.ts'
import { startEmbeddedPostgres } from '../../src/embedded-postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). Each test
// creates a cluster (initdb) and starts it: 16-22 s of them on a loaded 2-core machine.
setDefaultTimeout(120_000)

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

// `bun test` kills every child a file started when one of its tests times out (Bun 1.4): the test
// run's cluster, started by whichever file needs it first, ran as such a child, and one slow test
// failed every test after it in the run ("the database system is shutting down").
test('a grandchild server is no child of this process, answers, and stops', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-grandchild-'))
  cleanup.push(dir)
  const server = await startEmbeddedPostgres({
    dir,
    persistent: false,
    fast: true,
    grandchild: true,
  })
  let pid = 0
  try {
    pid = Number((await readFile(join(server.dir, 'postmaster.pid'), 'utf8')).split('\n')[0])
    // /proc/<pid>/stat: "pid (comm) state ppid ...".
    const parentOf = async (p: number) =>
      Number((await readFile(`/proc/${p}/stat`, 'utf8')).split(') ')[1]!.split(' ')[1])
    expect(await parentOf(pid)).not.toBe(process.pid)
    const client = new pg.Client({ connectionString: server.url() })
    await client.connect()
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }])
    await client.end()
  } finally {
    await server.stop()
  }
  // Exited: gone, or a zombie the shell has yet to reap.
  const state = existsSync(`/proc/${pid}`)
    ? ((await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')[0] ?? '')
    : 'gone'
  expect(['gone', 'Z']).toContain(state)
})

// A port found free can be taken before Postgres binds it: CI (five runs starting clusters at once)
// failed a file with "could not bind IPv4 address \"127.0.0.1\": Address already in use".
test('a port chosen for it that another process takes first is chosen again: the server starts', async () => {
  const holder: Server = createServer()
  const held = await new Promise<number>((resolve) =>
    holder.listen(0, '127.0.0.1', () => {
      const address = holder.address()
      resolve(typeof address === 'object' && address ? address.port : 0)
    }),
  )
  const chosen: number[] = []
  const dir = await mkdtemp(join(tmpdir(), 'outbox-port-taken-'))
  cleanup.push(dir)
  try {
    const server = await startEmbeddedPostgres({
      dir,
      persistent: false,
      fast: true,
      choosePort: async () => {
        const port = chosen.length === 0 ? held : await freePort()
        chosen.push(port)
        return port
      },
    })
    try {
      expect(chosen).toHaveLength(2)
      expect(new URL(server.url()).port).toBe(String(chosen[1]))
      const client = new pg.Client({ connectionString: server.url() })
      await client.connect()
      const r = await client.query<{ one: number }>('select 1 as one')
      await client.end()
      expect(r.rows[0]!.one).toBe(1)
    } finally {
      await server.stop()
    }
  } finally {
    await new Promise((resolve) => holder.close(resolve))
  }
})
