// Compiles the real binary once per test run, for tests that drive it as a separate process.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

let built: Promise<string> | null = null

export function compiledBinary(): Promise<string> {
  built ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outbox-bin-'))
    const out = join(dir, 'outbox-mailer')
    const root = resolve(import.meta.dir, '../..')
    const p = Bun.spawn(['bun', 'build', '--compile', 'src/main.ts', '--outfile', out], {
      cwd: root,
      stdout: 'pipe',
      stderr: 'pipe',
    })
    if ((await p.exited) !== 0)
      throw new Error(`bun build failed: ${await new Response(p.stderr).text()}`)
    return out
  })()
  return built
}
