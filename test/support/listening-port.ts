// The port a binary started with PORT=0 says it listens on: no port is picked here, free when looked at and another process's by the time the binary binds it.
import { pollUntil } from './events.ts'
import type { GrowingOutput } from './growing-output.ts'

/**
 * Reads the `http listening` line (LOG_LEVEL info or lower) from the binary's stdout. A binary that
 * exits first fails the wait at once, with what it printed.
 */
export async function listeningPort(
  stdout: GrowingOutput,
  exited: Promise<number>,
  timeoutMs = 30_000,
): Promise<number> {
  let exitCode: number | null = null
  void exited.then((code) => {
    exitCode = code
  })
  return pollUntil(async () => {
    for (const line of stdout.text().split('\n')) {
      if (!line.includes('"http listening"')) continue
      const port = (JSON.parse(line) as { port?: unknown }).port
      if (typeof port === 'number' && port > 0) return port
    }
    if (exitCode !== null)
      throw new Error(`the binary exited (${exitCode}) before listening: ${stdout.text()}`)
    return undefined
  }, timeoutMs)
}
