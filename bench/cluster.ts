// The benchmark's one Postgres: embedded, with pg_stat_statements preloaded, one database per system.
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { type EmbeddedServer, startEmbeddedPostgres } from '../src/embedded-postgres.ts'

export interface BenchCluster {
  dir: string
  /** URL as the superuser the systems use. */
  url(database: string): string
  /** URL as `bench_probe`, whose statements are left out of every count. */
  probeUrl(database: string): string
  /** The admin connection to the `postgres` database (for snapshots). */
  admin: pg.Client
  postmasterPid: number
  version: string
  settings: Record<string, string>
  createDatabase(name: string): Promise<void>
  stop(): Promise<void>
}

// Durable defaults on purpose (fsync, synchronous_commit, full_page_writes on): WAL and CPU as in production.
const FLAGS = [
  '-c',
  'shared_preload_libraries=pg_stat_statements',
  '-c',
  'pg_stat_statements.track=top',
  '-c',
  'pg_stat_statements.max=10000',
  '-c',
  'shared_buffers=256MB',
]

export const SHOWN_SETTINGS = [
  'server_version',
  'shared_buffers',
  'fsync',
  'synchronous_commit',
  'full_page_writes',
  'wal_level',
  'max_wal_size',
  'autovacuum',
  'autovacuum_naptime',
  'jit',
  'max_connections',
  'pg_stat_statements.track',
]

/**
 * `extraFlags`: settings beside the suite's (bench/idle-stages.ts logs every statement's duration);
 * `onLogLine`: each whole line of the server's log output, as it comes; `nativeDir`: another
 * server's binaries (a directory holding bin/initdb and bin/postgres, as embedded-postgres takes it).
 */
export async function startBenchCluster(
  o: { extraFlags?: string[]; onLogLine?: (line: string) => void; nativeDir?: string } = {},
): Promise<BenchCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-bench-pg-'))
  let partial = ''
  const onLogLine = o.onLogLine
  const onLog = onLogLine
    ? (text: string) => {
        const lines = (partial + text).split('\n')
        partial = lines.pop() ?? ''
        for (const l of lines) onLogLine(l)
      }
    : undefined
  const server: EmbeddedServer = await startEmbeddedPostgres({
    dir,
    persistent: false,
    extraFlags: [...FLAGS, ...(o.extraFlags ?? [])],
    ...(onLog ? { onLog } : {}),
    ...(o.nativeDir ? { nativeDir: o.nativeDir } : {}),
  })
  const admin = new pg.Client({
    connectionString: server.url('postgres'),
    application_name: 'bench:admin',
  })
  await admin.connect()
  await admin.query('create extension if not exists pg_stat_statements')
  await admin.query(`create role bench_probe login superuser password 'probe'`)
  const postmasterPid = Number((await readFile(join(dir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  const settings: Record<string, string> = {}
  const r = await admin.query<{ name: string; setting: string; unit: string | null }>(
    'select name, setting, unit from pg_settings where name = any($1)',
    [SHOWN_SETTINGS],
  )
  for (const s of r.rows) settings[s.name] = s.unit ? `${s.setting} ${s.unit}` : s.setting
  const version = (await admin.query<{ v: string }>('select version() as v')).rows[0]!.v
  const withDb = (u: string, db: string) => u.replace(/\/postgres$/, `/${db}`)
  return {
    dir,
    url: (db) => withDb(server.url('postgres'), db),
    probeUrl: (db) =>
      withDb(server.url('postgres'), db).replace('postgres:postgres@', 'bench_probe:probe@'),
    admin,
    postmasterPid,
    version,
    settings,
    async createDatabase(name) {
      await admin.query(`drop database if exists ${name} with (force)`)
      await admin.query(`create database ${name}`)
    },
    async stop() {
      await admin.end().catch(() => {})
      await server.stop()
    },
  }
}
