// serve run through a package script (`bun run start`): one Ctrl+C, which the script runner forwards as well, stops it gracefully.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')
const MAIN = join(ROOT, 'src/main.ts')

const db = useTestDb()

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

test('Ctrl+C on `bun run start` stops serve gracefully, exit 0: the copy bun run forwards is not a second signal', async () => {
  // package.json's own script, its src/main.ts made absolute, run in a directory of the test's.
  const script: string = (await Bun.file(join(ROOT, 'package.json')).json()).scripts.start
  expect(script).toContain('src/main.ts serve')
  const cwd = await mkdtemp(join(tmpdir(), 'outbox-script-signals-'))
  cleanup.push(() => rm(cwd, { recursive: true, force: true }))
  await writeFile(
    join(cwd, 'package.json'),
    JSON.stringify({ scripts: { start: script.replace('src/main.ts', MAIN) } }),
  )
  // A process group of its own, as a terminal runs it: Ctrl+C is a SIGINT to `bun run` and serve
  // alike, and `bun run` forwards its copy to serve a few ms later.
  const p = Bun.spawn(['setsid', process.execPath, 'run', 'start'], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: db.url,
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'outbox@example.com',
      HOST: '127.0.0.1',
      // Nothing connects to it: any port the system gives.
      PORT: '0',
      API_JWT_SECRET: 'k'.repeat(40),
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  cleanup.push(async () => {
    if (p.exitCode === null) {
      p.kill('SIGKILL')
      await p.exited
    }
  })
  const out = growingOutput(p.stdout)
  const err = growingOutput(p.stderr)
  await pollUntil(
    async () => (out.text().includes('"http listening"') || p.exitCode !== null ? true : undefined),
    20_000,
  )
  const shown = out.text().length
  process.kill(-p.pid, 'SIGINT')
  const code = await pollUntil(async () => p.exitCode ?? undefined, 20_000).catch(
    () => 'still running 20 s after Ctrl+C',
  )
  await out.ended
  await err.ended
  const stopping = out.text().slice(shown)
  expect({
    code,
    warnings: stopping.split('\n').filter((l) => l.includes('"level":"warn"')),
    stopped: stopping.includes('"msg":"stopped"'),
    // `bun run` echoes the script it runs first.
    stderr: err.text().replace(/^\$ .*\n/, ''),
  }).toEqual({ code: 0, warnings: [], stopped: true, stderr: '' })
})
