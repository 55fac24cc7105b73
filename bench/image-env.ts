// The release image's environment (Dockerfile ENV) for the suite's own process and the binary it starts.
import { imageEnv } from '../test/deploy/deploy-files.ts'

// Read once per process: the binary system asks at every start.
let fromDockerfile: Promise<Record<string, string>> | null = null

/** The image's ENV names, each with this process's value where the caller set one (an A/B run). */
export async function imageEnvInEffect(): Promise<Record<string, string>> {
  fromDockerfile ??= imageEnv()
  return Object.fromEntries(
    Object.entries(await fromDockerfile).map(([name, value]) => [name, process.env[name] ?? value]),
  )
}

/**
 * Runs this script again in a child process whose environment has the image's ENV, unless every
 * name is already set: an allocator setting takes effect only when the process starts. A value set
 * by the caller wins (e.g. `MIMALLOC_PURGE_HOLES=1 bun run bench` measures Bun's default).
 * Returns only in the process that has them; the parent exits with the child's code.
 */
export async function inImageEnv(): Promise<void> {
  const env = await imageEnvInEffect()
  if (Object.keys(env).every((name) => process.env[name] !== undefined)) return
  const child = Bun.spawn([process.execPath, ...process.argv.slice(1)], {
    env: { ...process.env, ...env },
    stdio: ['inherit', 'inherit', 'inherit'],
  })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal))
  process.exit(await child.exited)
}
