// The liveness watchdog: a process whose loops stay wedged ends itself, so that the platform restarts it.
import { EXIT } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { HealthSource } from './health.ts'

/**
 * Fly does not restart a machine for failing checks: a wedged loop must end the process. Three
 * failed liveness checks in a row, 20 s apart, exit it with EXIT.failure. Returns the stop.
 */
export function startLivenessWatchdog(health: HealthSource, log: Logger): () => void {
  let failedChecks = 0
  const watchdog = setInterval(() => {
    const live = health.liveness()
    failedChecks = live.ok ? 0 : failedChecks + 1
    if (failedChecks >= 3) {
      log.error('worker loop wedged; exiting so the platform restarts us', {
        problems: live.problems,
      })
      process.exit(EXIT.failure)
    }
  }, 20_000)
  return () => clearInterval(watchdog)
}
