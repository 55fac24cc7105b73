// The fault suite's machinery: spawns the compiled binary, owns its Postgres and Graph fakes, and measures outcomes.
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { type AddressInfo, connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import pg from 'pg'
import { type EmbeddedServer, startEmbeddedPostgres } from '../../src/embedded-postgres.ts'
import { testCluster } from '../preload.ts'
import { compiledBinary } from '../support/binary.ts'
import {
  type AcceptedMessage,
  type FakeGraph,
  type FakeGraphOptions,
  generateTestCertificate,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'
import { listeningPort } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'

export const MAILBOX = 'outbox@contoso.example'
/** Generated per run: secrets never enter the repository. */
export const JWT_SECRET = crypto.randomUUID() + crypto.randomUUID()

// Everything a scenario starts is stopped by cleanupAll (each file's afterAll), last started first.
const cleanups: (() => Promise<unknown>)[] = []
export function onCleanup(f: () => Promise<unknown>) {
  cleanups.push(f)
}
export async function cleanupAll() {
  while (cleanups.length > 0) {
    const f = cleanups.pop()!
    await f().catch((e) => console.error('fault-suite cleanup failed:', e))
  }
  started.mailers.length = 0
  started.graphs.length = 0
  started.databases.length = 0
}

/** What the scenario started and cleanupAll has not stopped yet: kept-evidence.ts copies it. */
export const started = {
  mailers: [] as Mailer[],
  graphs: [] as Graph[],
  databases: [] as Database[],
}

declare global {
  var __faultBinary: Promise<string> | undefined
  var __faultCert: Promise<TestCertificate> | undefined
}

/** The binary is built once per run, shared by every scenario file; a failed build is tried again. */
export function binary(): Promise<string> {
  globalThis.__faultBinary ??= compiledBinary().catch((err) => {
    globalThis.__faultBinary = undefined
    throw err
  })
  return globalThis.__faultBinary
}

function certificate(): Promise<TestCertificate> {
  globalThis.__faultCert ??= generateTestCertificate()
  return globalThis.__faultCert
}

// ---------------------------------------------------------------- waiting

/** Polls `check` until it returns a value; fails naming `what` (and the mailers' last log lines). */
export async function within<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
  o: { every?: number; mailers?: readonly Mailer[] } = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs
  let lastError: unknown = null
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
      lastError = null
    } catch (e) {
      lastError = e
    }
    if (performance.now() > deadline) {
      const logs = (o.mailers ?? []).map((m) => `--- ${m.name} (last lines)\n${m.logTail(15)}`)
      throw new Error(
        [
          `not within ${timeoutMs} ms: ${what}`,
          ...(lastError ? [`last error: ${String(lastError)}`] : []),
          ...logs,
        ].join('\n'),
      )
    }
    await Bun.sleep(o.every ?? 50)
  }
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

/** One line per scenario with its figures: the suite's output. */
export function report(scenario: string, figures: Record<string, string | number>) {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${v}`)
  console.log(`[fault] ${scenario.padEnd(24)} ${parts.join(' ')}`)
}

// ---------------------------------------------------------------- Postgres

export interface Database {
  name: string
  url: string
  pool: pg.Pool
  /**
   * Set by a scenario whose Graph fake takes several databases' mail (their rows numbered alike):
   * which acceptances are this database's rows', for its send counts and its kept evidence.
   */
  ownsAcceptance?: (a: AcceptedMessage) => boolean
  q<R extends pg.QueryResultRow = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<R[]>
}

function openDatabase(name: string, url: string): Database {
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 3_000 })
  // A stopped server ends idle clients: that is the scenario, not a crash of the suite.
  pool.on('error', () => {})
  const d: Database = {
    name,
    url,
    pool,
    q: async (text, values) => (await pool.query(text, values)).rows,
  }
  started.databases.push(d)
  return d
}

/** A migrated database cloned from the run's template on the shared test cluster. */
export async function sharedDatabase(name: string): Promise<Database> {
  const cluster = await testCluster()
  const db = `outbox_fault_${name}_${crypto.randomUUID().slice(0, 8)}`
  await adminQuery(cluster.admin, `create database ${db} template ${cluster.templateName}`)
  const d = openDatabase(db, cluster.url(db))
  onCleanup(async () => {
    await d.pool.end()
    await adminQuery(cluster.admin, `drop database if exists ${db} with (force)`)
  })
  return d
}

export interface OwnCluster {
  server: EmbeddedServer
  db: Database
  /** Seconds the server was last down for. */
  stop(): Promise<void>
  start(): Promise<void>
  /** Kills the server at once (SIGQUIT, immediate shutdown): the next start recovers from its WAL. */
  crash(): Promise<void>
}

/**
 * A cluster of its own that a scenario may stop and start again, migrated by the binary itself.
 * `crashable`: commits wait for their WAL to be written (no server-wide synchronous_commit=off), so
 * a crash() loses only what Postgres itself may lose; fsync stays off (no machine crash here).
 */
export async function ownCluster(
  name: string,
  o: { crashable?: boolean } = {},
): Promise<OwnCluster> {
  const dir = await mkdtemp(join(tmpdir(), `outbox-fault-pg-${name}-`))
  // TEST_POSTGRES_NATIVE: another Postgres version's binaries (.ci/run runs the faults on 17 too).
  const server = await startEmbeddedPostgres({
    dir,
    persistent: true,
    fast: !o.crashable,
    ...(o.crashable ? { extraFlags: ['-c', 'fsync=off', '-c', 'full_page_writes=off'] } : {}),
    nativeDir: process.env.TEST_POSTGRES_NATIVE || undefined,
  })
  let up = true
  onCleanup(async () => {
    if (up) await server.stop()
    await rm(dir, { recursive: true, force: true })
  })
  await adminQuery(server.url('postgres'), 'create database mailer_app')
  const db = openDatabase(name, server.url('mailer_app'))
  onCleanup(() => db.pool.end())
  const migrate = Bun.spawn([await binary(), 'migrate'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: db.url,
      MAIL_TRANSPORT: 'discard',
      LOG_LEVEL: 'warn',
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [code, err] = await Promise.all([migrate.exited, new Response(migrate.stderr).text()])
  if (code !== 0) throw new Error(`migrate exited ${code}: ${err}`)
  return {
    server,
    db,
    stop: async () => {
      await server.stop()
      up = false
    },
    start: async () => {
      await server.start()
      up = true
    },
    crash: async () => {
      const pid = Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0])
      process.kill(pid, 'SIGQUIT')
      await within('postmaster gone after SIGQUIT', 10_000, () => {
        try {
          process.kill(pid, 0)
          return undefined
        } catch {
          return true
        }
      })
      up = false
    },
  }
}

/** Enqueues `n` messages through the SQL API, spread over `senders` mailboxes; returns their ids. */
export async function enqueue(
  db: Database,
  n: number,
  o: { senders?: readonly string[]; tag?: string } = {},
): Promise<string[]> {
  const senders = o.senders ?? [MAILBOX]
  const rows = await db.q<{ id: string }>(
    `select mailer.enqueue_email(jsonb_build_object(
        'from', ($2::text[])[1 + (g % cardinality($2::text[]))],
        'to', 'r' || g || '@example.com', 'subject', $1 || ' ' || g, 'text', 'body ' || g))::text as id
       from generate_series(1, $3::int) g`,
    [o.tag ?? 'fault', senders, n],
  )
  return rows.map((r) => r.id)
}

export async function statusCounts(db: Database): Promise<Record<string, number>> {
  const rows = await db.q<{ status: string; n: number }>(
    'select status, count(*)::int as n from mailer.email_outbox group by status',
  )
  return Object.fromEntries(rows.map((r) => [r.status, r.n]))
}

/** Resolves when every given row is `sent` (and none failed: a failure ends the wait at once). */
export async function allSent(
  db: Database,
  ids: readonly string[],
  timeoutMs: number,
  mailers: readonly Mailer[] = [],
): Promise<void> {
  await within(
    `${ids.length} rows sent in ${db.name}`,
    timeoutMs,
    async () => {
      const [r] = await db.q<{ sent: number; failed: number }>(
        `select count(*) filter (where status = 'sent')::int as sent,
                count(*) filter (where status in ('failed', 'cancelled'))::int as failed
           from mailer.email_outbox where id = any($1::bigint[])`,
        [ids],
      )
      if (r!.failed > 0) throw new Error(`${r!.failed} rows failed or cancelled`)
      return r!.sent === ids.length ? true : undefined
    },
    { mailers, every: 100 },
  )
}

// ---------------------------------------------------------------- Graph

export interface Graph {
  fake: FakeGraph
  env: Record<string, string>
  /**
   * How often the fake accepted each outbox id; `of`: only the acceptances it picks (one database's,
   * where several number their rows alike).
   */
  acceptedCounts(of?: (a: AcceptedMessage) => boolean): Map<string, number>
  /** Accepted more than once, summed over ids (2 acceptances of one id = 1 duplicate). */
  duplicates(ids?: readonly string[]): number
  /** Ids among `ids` the fake never accepted. */
  missing(ids: readonly string[]): string[]
  /** With `cuttable`: closes every connection open to the fake now (a network blip); how many. */
  cut(): number
}

/** `cuttable`: the mailers reach the fake through a proxy whose open connections `cut()` closes. */
export async function startGraph(
  opts: FakeGraphOptions = {},
  o: { cuttable?: boolean } = {},
): Promise<Graph> {
  const cert = await certificate()
  let fakePort = 0
  const proxy = o.cuttable ? await startFreezingProxy(() => `http://127.0.0.1:${fakePort}`) : null
  const fake = await startFakeGraph({
    certificates: [cert.certPem],
    ...(proxy ? { publicOrigin: `http://127.0.0.1:${proxy.port}` } : {}),
    ...opts,
  })
  fakePort = fake.port ?? 0
  onCleanup(() => fake.stop())
  const acceptedCounts = (of?: (a: AcceptedMessage) => boolean) => {
    const counts = new Map<string, number>()
    for (const a of fake.accepted) {
      if (a.outboxId !== null && (!of || of(a)))
        counts.set(a.outboxId, (counts.get(a.outboxId) ?? 0) + 1)
    }
    return counts
  }
  const graph: Graph = {
    fake,
    env: {
      MAIL_TRANSPORT: 'graph',
      MAIL_FROM: MAILBOX,
      GRAPH_TENANT_ID: fake.tenantId,
      GRAPH_CLIENT_ID: fake.clientId,
      GRAPH_CERTIFICATE: cert.certPem,
      GRAPH_PRIVATE_KEY: cert.keyPem,
      GRAPH_AUTHORITY_URL: fake.authorityUrl,
      GRAPH_API_URL: fake.apiUrl,
    },
    acceptedCounts,
    duplicates(ids) {
      const only = ids ? new Set(ids) : null
      let d = 0
      for (const [id, n] of acceptedCounts()) if (!only || only.has(id)) d += n - 1
      return d
    },
    missing(ids) {
      const counts = acceptedCounts()
      return ids.filter((id) => !counts.has(id))
    },
    cut: () => proxy?.cut() ?? 0,
  }
  started.graphs.push(graph)
  return graph
}

// ---------------------------------------------------------------- the binary

export interface Mailer {
  name: string
  proc: Bun.Subprocess
  port: number
  base: string
  exited: Promise<number>
  /** Its stdout and stderr (removed at cleanup; a failing scenario's kept by kept-evidence.ts). */
  logPath: string
  alive(): boolean
  readyz(): Promise<{ status: number; body: Readiness | null }>
  waitReady(timeoutMs?: number): Promise<void>
  logTail(lines: number): string
  /** User + system CPU seconds so far (Linux /proc). */
  cpuSeconds(): number
  api(path: string, init?: RequestInit): Promise<Response>
}

export interface Readiness {
  status: string
  databases: {
    name: string
    ready: boolean
    reachable: boolean
    listener: string
    problem: string | null
  }[]
}

const CLK_TCK = 100

/** A mailer's log so far ('' before its first line). */
function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

/**
 * Starts `outbox-mailer serve` with test-friendly defaults, returned once it listens (on a port the
 * system chose); it is killed at cleanup if still running.
 * `binary`: another build's executable (an older release draining beside this one).
 */
export async function spawnMailer(
  name: string,
  env: Record<string, string>,
  o: { role?: 'all' | 'worker' | 'api'; binary?: string } = {},
): Promise<Mailer> {
  if (env.LOG_LEVEL === 'warn' || env.LOG_LEVEL === 'error')
    throw new Error(`${name}: LOG_LEVEL info or debug: its port is read from an info line`)
  const logDir = await mkdtemp(join(tmpdir(), `outbox-fault-log-${name}-`))
  const logPath = join(logDir, 'mailer.log')
  const fd = openSync(logPath, 'a')
  const proc = Bun.spawn([o.binary ?? (await binary()), 'serve', '--role', o.role ?? 'all'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      // The system's choice, read back from the "http listening" line: a port picked here could
      // be another process's by the time the binary binds it.
      PORT: '0',
      LOG_LEVEL: 'info',
      API_JWT_SECRET: JWT_SECRET,
      ...env,
    },
    stdout: fd,
    stderr: fd,
  })
  closeSync(fd)
  let done = false
  const exited = proc.exited.then((code) => {
    done = true
    return code
  })
  onCleanup(async () => {
    if (!done) {
      proc.kill('SIGKILL')
      await exited
    }
    await rm(logDir, { recursive: true, force: true })
  })
  const port = await listeningPort({ text: () => readLog(logPath) }, exited)
  const base = `http://127.0.0.1:${port}`
  const m: Mailer = {
    name,
    proc,
    port,
    base,
    exited,
    logPath,
    alive: () => !done,
    async readyz() {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5_000) })
      const body = (await res.json().catch(() => null)) as Readiness | null
      return { status: res.status, body }
    },
    async waitReady(timeoutMs = 20_000) {
      await within(
        `${name} /readyz 200`,
        timeoutMs,
        async () => {
          if (done) throw new Error(`${name} exited with ${await exited}`)
          return (await m.readyz().catch(() => null))?.status === 200 ? true : undefined
        },
        { mailers: [m] },
      )
    },
    logTail(lines) {
      try {
        return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
      } catch {
        return '(no log)'
      }
    },
    cpuSeconds() {
      const stat = readFileSync(`/proc/${proc.pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
    },
    async api(path, init = {}) {
      const token = await new SignJWT({ scope: 'outbox:read outbox:write' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('fault-suite')
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(JWT_SECRET))
      return fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
      })
    },
  }
  started.mailers.push(m)
  return m
}

/** Worker knobs that make faults show quickly: short leases, fast checks, a long backstop poll. */
export const FAST = {
  LEASE_SECONDS: '5',
  HEARTBEAT_SECONDS: '1',
  GRAPH_REQUEST_TIMEOUT_SECONDS: '2',
  RETRY_BASE_SECONDS: '1',
  RETRY_MAX_SECONDS: '2',
  POLL_INTERVAL_SECONDS: '3600',
  LISTEN_CHECK_SECONDS: '600',
  MAILBOX_RATE_PER_MINUTE: '0',
} as const

// ---------------------------------------------------------------- a half-open network

export interface FreezingProxy {
  port: number
  /** Connections open now stop forwarding in both directions, without closing: a dead NAT entry. */
  freeze(): number
  /** Connections open now are closed at once, in both directions: a network blip. */
  cut(): number
  /** Connections accepted so far. */
  accepted(): number
}

/**
 * A loopback TCP proxy whose current connections can be frozen or cut; new connections still pass.
 * `target` may be a function, read at each connection (a target started after the proxy).
 */
export async function startFreezingProxy(target: string | (() => string)): Promise<FreezingProxy> {
  const targetUrl = () => new URL(typeof target === 'string' ? target : target())
  // `open` is every pair (closed at cleanup); `live` the pairs still forwarding.
  const open = new Set<{ client: Socket; upstream: Socket }>()
  const live = new Set<{ client: Socket; upstream: Socket }>()
  let count = 0
  const server = createServer((client) => {
    count++
    const u = targetUrl()
    const upstream = connect(Number(u.port), u.hostname)
    const pair = { client, upstream }
    open.add(pair)
    live.add(pair)
    for (const s of [client, upstream]) s.on('error', () => {})
    const close = () => {
      open.delete(pair)
      live.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', close)
    upstream.on('close', close)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        for (const p of open) {
          p.client.destroy()
          p.upstream.destroy()
        }
        server.close(() => resolve())
      }),
  )
  return {
    port,
    freeze() {
      const n = live.size
      for (const { client, upstream } of live) {
        client.unpipe(upstream)
        upstream.unpipe(client)
        client.pause()
        upstream.pause()
      }
      live.clear()
      return n
    },
    cut() {
      const n = open.size
      for (const { client, upstream } of [...open]) {
        client.destroy()
        upstream.destroy()
      }
      return n
    },
    accepted: () => count,
  }
}
