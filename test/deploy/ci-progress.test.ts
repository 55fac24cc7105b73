// .ci/progress, the line .ci/run prints each minute while its test runs go on: files done and failures per run, read from their logs.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ROOT } from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const dir = await mkdtemp(join(tmpdir(), 'outbox-ci-progress-'))
afterAll(() => rm(dir, { recursive: true, force: true }))

/** bun test's output as it stands after `files` begun, the last one still running. */
function bunLog(files: string[], fails: number, ended: boolean): string {
  const lines = ['bun test v1.4.5 (a7733435c)', '']
  for (const f of files) lines.push(`${f}:`, '(pass) a test [1.00ms]', '')
  for (let i = 0; i < fails; i++) lines.push(`(fail) failing test ${i} [2.00ms]`)
  // What a test prints may end in a path and a colon too, but not at the start of a line.
  lines.push('  at <anonymous> (test/unit/x.test.ts:')
  if (ended)
    lines.push(' 5 pass', ` ${fails} fail`, `Ran 5 tests across ${files.length} files. [9s]`)
  return `${lines.join('\n')}\n`
}

async function progress(...args: string[]): Promise<string> {
  const p = Bun.spawn(['bash', resolve(ROOT, '.ci/progress'), ...args], {
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [code, out, err] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ])
  expect({ code, err }).toEqual({ code: 0, err: '' })
  return out
}

test('a line gives the time so far and, per run, the files done of its total and its failures', async () => {
  const running = join(dir, 'pg18.log')
  const ended = join(dir, 'pg17.log')
  await writeFile(
    running,
    bunLog(['test/unit/a.test.ts', 'test/api/b.test.ts', 'c.test.ts'], 1, false),
  )
  await writeFile(ended, bunLog(['test/faults/01-sigkill.fault.ts'], 0, true))
  const started = String(Math.floor(Date.now() / 1000) - 125)
  const line = await progress(
    started,
    'tests (Postgres 18)',
    running,
    '93',
    'faults (17)',
    ended,
    '10',
  )
  expect(line).toMatch(
    /^ci: 2m0[5-9]s: tests \(Postgres 18\) 2\/93 files done, 1 failed; faults \(17\) ended, 1\/10 files, 0 failed\n$/,
  )
})

test('a run whose log does not exist yet has done nothing', async () => {
  const started = String(Math.floor(Date.now() / 1000))
  expect(await progress(started, 'tests', join(dir, 'none.log'), '93')).toMatch(
    /^ci: 0m0\ds: tests 0\/93 files done, 0 failed\n$/,
  )
})
