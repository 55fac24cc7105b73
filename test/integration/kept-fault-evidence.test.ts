// A fault scenario that outlives its bound keeps its evidence: the fixture run by a bun test of its own, whose timeout is the case.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { BUILD_HOOK_TIMEOUT_MS, compiledBinary } from '../support/binary.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')
// The run's own temporary directory (its cluster, the mailer's log, the evidence), removed after.
const tmp = await mkdtemp(join(tmpdir(), 'outbox-kept-evidence-'))
// Run as root, Postgres runs as "postgres", which must reach its data directory in here.
await chmod(tmp, 0o755)
afterAll(() => rm(tmp, { recursive: true, force: true }))
let binary = ''
beforeAll(async () => {
  binary = await compiledBinary()
}, BUILD_HOOK_TIMEOUT_MS)

test('a scenario still running at its bound keeps the logs and tables of what it started, named in its failure', async () => {
  const run = Bun.spawn(
    [process.execPath, 'test', './test/faults/fixtures/outlives-its-bound.ts'],
    {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp, TEST_BINARY: binary },
      stdout: 'pipe',
      stderr: 'pipe',
    },
  )
  const [code, stdout, stderr] = await Promise.all([
    run.exited,
    new Response(run.stdout).text(),
    new Response(run.stderr).text(),
  ])
  const output = `${stdout}${stderr}`
  expect(output).toContain('error: not finished within its bound of 1000 ms')
  expect(code).toBe(1)
  const dir =
    /\[fault\] failed: a scenario still running at its bound; evidence kept in (\S+)/.exec(
      output,
    )?.[1]
  expect(dir).toStartWith(join(tmp, 'outbox-fault-evidence-a-scenario-still-running-at-its-bo'))
  const [database] = await readdir(dir!)
  const kept = join(dir!, database!)
  const outbox = JSON.parse(await readFile(join(kept, 'email_outbox.json'), 'utf8')) as {
    status: string
  }[]
  expect(outbox.map((r) => r.status)).toEqual(['sent', 'sent', 'sent'])
  const accepted = JSON.parse(await readFile(join(kept, 'graph-accepted.json'), 'utf8'))
  expect(accepted).toHaveLength(3)
  // The mailer's log, which the cleanup after bun's timeout removed: it was killed with the test.
  expect(await readFile(join(kept, 'outlived.log'), 'utf8')).toContain('http listening')
}, 180_000)
