// `bun run dev` and its embedded Postgres end together: a Postgres that dies under dev ends dev with a line saying so; Ctrl+C stops dev, then its Postgres.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { pollUntil } from '../support/events.ts'
import { type GrowingOutput, growingOutput } from '../support/growing-output.ts'

// Starts an embedded Postgres of its own (initdb, migrations): slower than a unit test, still bounded.
setDefaultTimeout(150_000)

const DEV = resolve(import.meta.dir, '../../src/dev.ts')
const ROOT = resolve(import.meta.dir, '../..')
const RUNNING = 'outbox-mailer is running'

interface DevRun {
  p: Bun.Subprocess<'ignore', 'pipe', 'pipe'>
  out: GrowingOutput
  err: GrowingOutput
  /** The embedded Postgres's data directory, as dev printed it. */
  dataDir: string
}

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

/**
 * dev in a process group of its own, as a terminal runs it: Ctrl+C there is a SIGINT to the whole
 * foreground group, every process in it that has not left it. Its Postgres (the data directory dev
 * prints) is killed after the test whatever happened. `viaScript` starts it as the quick start
 * does, `bun run dev`: package.json's script, its src/dev.ts made absolute, in the test's directory.
 */
async function spawnDev(port = '0', o: { viaScript?: boolean } = {}) {
  const cwd = await mkdtemp(join(tmpdir(), 'outbox-dev-pg-exit-'))
  let command = ['setsid', process.execPath, DEV]
  if (o.viaScript) {
    const script: string = (await Bun.file(join(ROOT, 'package.json')).json()).scripts.dev
    expect(script).toContain('src/dev.ts')
    const dev = script.replace('src/dev.ts', DEV)
    await writeFile(join(cwd, 'package.json'), JSON.stringify({ scripts: { dev } }))
    command = ['setsid', process.execPath, 'run', 'dev']
  }
  const p = Bun.spawn(command, {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      // Nothing here connects to either: any port the system gives, and any free one dev's
      // Postgres start chooses (again, should another process take it before the bind).
      PORT: port,
      DEV_POSTGRES_PORT: '0',
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const out = growingOutput(p.stdout)
  const err = growingOutput(p.stderr)
  const dataDirOf = () => /Postgres data in (\S+)/.exec(out.text())?.[1] ?? null
  cleanup.push(async () => {
    if (p.exitCode === null) {
      p.kill('SIGKILL')
      await p.exited
    }
    const dataDir = dataDirOf()
    if (dataDir) {
      // Whatever the test did, no Postgres of its own outlives it.
      const pid = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => null)
      try {
        if (pid) process.kill(Number(pid.split('\n')[0]), 'SIGKILL')
      } catch {}
      await rm(dirname(dataDir), { recursive: true, force: true })
    }
    await rm(cwd, { recursive: true, force: true })
  })
  return { p, out, err, dataDirOf }
}

/** What dev wrote on stderr: `bun run` first echoes the script it runs, `$ bun run …`. */
const devStderr = (err: GrowingOutput) => err.text().replace(/^\$ .*\n/, '')

async function startDev(until = RUNNING, o: { viaScript?: boolean } = {}): Promise<DevRun> {
  const { p, out, err, dataDirOf } = await spawnDev('0', o)
  await pollUntil(
    async () => (out.text().includes(until) || p.exitCode !== null ? true : undefined),
    120_000,
  )
  expect({
    running: out.text().includes(until),
    stderr: devStderr(err),
  }).toEqual({
    running: true,
    stderr: '',
  })
  return { p, out, err, dataDir: dataDirOf()! }
}

const postmasterPid = async (dataDir: string) =>
  Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])

/** /proc/<pid>/stat: "pid (comm) state ppid pgrp ...". */
const processGroupOf = async (pid: number) =>
  Number((await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')[2])

test('a Postgres killed under dev ends dev with exit 1 and one line naming the signal and its log', async () => {
  const dev = await startDev()
  process.kill(await postmasterPid(dev.dataDir), 'SIGKILL')
  const code = await pollUntil(async () => dev.p.exitCode ?? undefined, 30_000).catch(
    () => 'still running 30 s after its Postgres was killed',
  )
  expect(code).toBe(1)
  await dev.err.ended
  const log = join(dirname(dev.dataDir), 'postgres.log')
  expect(dev.err.text().trim()).toBe(
    `outbox-mailer dev: the embedded Postgres exited (signal SIGKILL) while dev ran, so dev stops: its log is ${log}. Start again with \`bun run dev\`.`,
  )
  // The log holds what the server said while it ran.
  expect(await readFile(log, 'utf8')).toContain('database system is ready to accept connections')
})

test('Ctrl+C stops dev cleanly first, then its Postgres: exit 0, no database error on the way', async () => {
  const dev = await startDev()
  const pid = await postmasterPid(dev.dataDir)
  // Out of the terminal's reach: Ctrl+C reaches dev alone, which stops the engine while its
  // database still answers, then stops the database.
  expect(await processGroupOf(pid)).not.toBe(dev.p.pid)
  const shown = dev.out.text().length
  process.kill(-dev.p.pid, 'SIGINT')
  const code = await pollUntil(async () => dev.p.exitCode ?? undefined, 30_000).catch(
    () => 'still running 30 s after Ctrl+C',
  )
  await dev.out.ended
  const stopping = dev.out.text().slice(shown)
  expect({
    code,
    warnings: stopping.split('\n').filter((l) => l.includes('"level":"warn"')),
  }).toEqual({ code: 0, warnings: [] })
  // dev waited for its Postgres: gone once dev is.
  expect(existsSync(join(dev.dataDir, 'postmaster.pid'))).toBe(false)
  expect(existsSync(`/proc/${pid}`)).toBe(false)
  expect(dev.err.text()).toBe('')
})

test('Ctrl+C on `bun run dev` stops dev as gracefully: the copy of the SIGINT bun run forwards is not a second signal', async () => {
  // The terminal signals the whole group, `bun run` and dev alike, and `bun run` forwards its own
  // copy to dev: one Ctrl+C arrives twice, a few ms apart, unless the kernel merged them.
  const dev = await startDev(RUNNING, { viaScript: true })
  const shown = dev.out.text().length
  process.kill(-dev.p.pid, 'SIGINT')
  const code = await pollUntil(async () => dev.p.exitCode ?? undefined, 30_000).catch(
    () => 'still running 30 s after Ctrl+C',
  )
  await dev.out.ended
  await dev.err.ended
  const stopping = dev.out.text().slice(shown)
  expect({
    code,
    warnings: stopping.split('\n').filter((l) => l.includes('"level":"warn"')),
    stopped: stopping.includes('"msg":"stopped"'),
    stderr: devStderr(dev.err),
  }).toEqual({ code: 0, warnings: [], stopped: true, stderr: '' })
  expect(existsSync(join(dev.dataDir, 'postmaster.pid'))).toBe(false)
})

test('Ctrl+C while dev is still starting stops its Postgres too', async () => {
  // Its Postgres is up and dev is migrating: not yet running the engine that stops on a signal.
  const dev = await startDev('Postgres data in ')
  const pid = await postmasterPid(dev.dataDir)
  process.kill(-dev.p.pid, 'SIGINT')
  const code = await pollUntil(async () => dev.p.exitCode ?? undefined, 30_000).catch(
    () => 'still running 30 s after Ctrl+C',
  )
  expect(code).not.toBe('still running 30 s after Ctrl+C')
  const left = await pollUntil(
    async () => (existsSync(`/proc/${pid}`) ? undefined : 'gone'),
    30_000,
  ).catch(() => 'its Postgres still running 30 s after dev ended')
  expect(left).toBe('gone')
})

test('an HTTP port another program holds ends dev with exit 1, one line saying so and what to do, and its Postgres stops', async () => {
  const holder = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('taken') })
  cleanup.push(async () => {
    holder.stop(true)
  })
  const port = holder.port!
  const dev = await spawnDev(String(port))
  const code = await pollUntil(async () => dev.p.exitCode ?? undefined, 120_000).catch(
    () => 'still running 120 s after its start',
  )
  expect(code).toBe(1)
  await dev.err.ended
  expect(dev.err.text().trim()).toBe(
    `outbox-mailer dev: cannot listen on 127.0.0.1:${port} (PORT): another program holds that port (EADDRINUSE); stop it, or give dev another: PORT=${port + 1} bun run dev`,
  )
  // It had started: its Postgres is gone with it.
  const dataDir = dev.dataDirOf()
  expect(dataDir).not.toBeNull()
  expect(existsSync(join(dataDir!, 'postmaster.pid'))).toBe(false)
})
