// The ports a binary started with PORT=0 (and METRICS_PORT=0) says it listens on: no port is picked here, free when looked at and another process's by the time the binary binds it.
import { pollUntil } from './events.ts'
import type { GrowingOutput } from './growing-output.ts'

/**
 * Reads the `http listening` line (LOG_LEVEL info or lower) from the binary's output: its stdout as
 * it grows, or a log file it writes (read whole each time). Only whole lines are read: a line cut
 * between two writes is no JSON yet. A binary that exits first fails the wait at once, with what it
 * printed.
 */
export async function listeningPort(
  output: Pick<GrowingOutput, 'text'>,
  exited: Promise<number>,
  timeoutMs = 30_000,
): Promise<number> {
  return (await listeningPorts(output, exited, timeoutMs)).port
}

/** As listeningPort, with /metrics' own port (METRICS_PORT, 0 the system's choice too) when it has one. */
export async function listeningPorts(
  output: Pick<GrowingOutput, 'text'>,
  exited: Promise<number>,
  timeoutMs = 30_000,
): Promise<{ port: number; metricsPort: number | null }> {
  let exitCode: number | null = null
  void exited.then((code) => {
    exitCode = code
  })
  return pollUntil(async () => {
    for (const line of output.text().split('\n').slice(0, -1)) {
      if (!line.includes('"http listening"')) continue
      const { port, metricsPort } = JSON.parse(line) as { port?: unknown; metricsPort?: unknown }
      if (typeof port !== 'number' || port <= 0) continue
      if (metricsPort === undefined) return { port, metricsPort: null }
      if (typeof metricsPort === 'number' && metricsPort > 0) return { port, metricsPort }
    }
    if (exitCode !== null)
      throw new Error(`the binary exited (${exitCode}) before listening: ${output.text()}`)
    return undefined
  }, timeoutMs)
}
