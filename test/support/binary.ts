// Compiles the real binary once per test run (or takes TEST_BINARY), for tests that drive it as a separate process.
import { constants } from 'node:fs'
import { access, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { madeOnce } from './made-once.ts'

/**
 * A bound for a hook that builds: a compile is CPU work a loaded machine stretches (12 s wall at load
 * 11, where the run's first file also starts the cluster), not a wait on an effect.
 */
export const BUILD_HOOK_TIMEOUT_MS = 90_000

/**
 * The binary's path; a build that failed (killed under load, say) is tried again by the next file.
 * TEST_BINARY names one `bun run build` made from this checkout instead: .ci/run builds once for
 * its four test runs, which would each compile the same binary again (CPU a parallel run shares).
 */
export const compiledBinary: () => Promise<string> = madeOnce(async () => {
  const given = process.env.TEST_BINARY
  if (given) {
    const path = resolve(given)
    await access(path, constants.X_OK).catch((err: unknown) => {
      throw new Error(`TEST_BINARY=${given} is not an executable file: ${String(err)}`)
    })
    return path
  }
  const dir = await mkdtemp(join(tmpdir(), 'outbox-bin-'))
  const out = join(dir, 'outbox-mailer')
  const root = resolve(import.meta.dir, '../..')
  // The exact command of `bun run build` (package.json), into a temporary file: tests and the
  // benchmark drive what ships (bytecode and all).
  const pkg = (await Bun.file(join(root, 'package.json')).json()) as {
    scripts: { build: string }
  }
  const args = pkg.scripts.build.split(/\s+/)
  const at = args.indexOf('--outfile')
  if (args[0] !== 'bun' || at < 0) throw new Error(`unexpected build script: ${pkg.scripts.build}`)
  args[at + 1] = out
  const p = Bun.spawn(args, {
    cwd: root,
    stdout: 'pipe',
    stderr: 'pipe',
  })
  if ((await p.exited) !== 0)
    throw new Error(`bun build failed: ${await new Response(p.stderr).text()}`)
  return out
})

/** Runs the binary to its exit with exactly `env`, and collects what it printed. */
export async function runBinary(
  bin: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([bin, ...args], { env, stdout: 'pipe', stderr: 'pipe' })
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ])
  return { code, stdout, stderr }
}
