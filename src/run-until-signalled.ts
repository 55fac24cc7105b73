// `serve` until SIGTERM/SIGINT/SIGHUP: a signal stops it within the shutdown grace, one during the start once started, a second exits at once.
import type { Config } from './config.ts'
import { EXIT } from './errors.ts'
import { type Running, type ServeOptions, serve } from './serve.ts'

/**
 * Runs `serve` until SIGTERM, SIGINT or SIGHUP; a second signal exits at once. SIGHUP is what a
 * `serve` started from a terminal or an SSH session gets when that closes: its default action ends
 * the process at once, like a SIGKILL (sends in flight left ambiguous, leases and provider slots held
 * until they expire). Nothing here can be reloaded (the configuration is the environment), so it
 * stops as SIGTERM does.
 */
export async function runUntilSignalled(config: Config, o: ServeOptions): Promise<never> {
  // Listened for before anything starts: the drainers claim and send before serve() returns, and
  // a SIGTERM then must stop them within the grace, not end the process like a SIGKILL. A signal
  // during the start is kept, and the stop begins once the start is done.
  let running: Running | null = null
  let asked: string | null = null
  let signals = 0
  const stop = (r: Running, signal: string) => {
    void r.stop(signal).then(
      () => process.exit(EXIT.ok),
      (err) => {
        o.log.error('shutdown failed', { err })
        process.exit(EXIT.failure)
      },
    )
  }
  const onSignal = (signal: string) => {
    signals += 1
    if (signals > 1) {
      o.log.warn('second signal; exiting now', { signal })
      process.exit(EXIT.failure)
    }
    if (running) stop(running, signal)
    else {
      asked = signal
      o.log.info('signal during the start; stopping once started', { signal })
    }
  }
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGHUP', () => onSignal('SIGHUP'))
  running = await serve(config, o)
  if (asked !== null) stop(running, asked)
  return new Promise<never>(() => {})
}
