// `serve` until SIGTERM/SIGINT/SIGHUP or an error nothing caught: either stops it within the shutdown grace, one during the start once started; a second signal exits at once.
import type { Config } from './config.ts'
import { describeStack, EXIT } from './errors.ts'
import { STOP_MARGIN_MS } from './outbox/shutdown-grace.ts'
import { serve } from './serve.ts'
import type { Running, ServeOptions } from './serve-options.ts'

/**
 * Run by a package script (`bun run dev`, `bun run start`), one Ctrl+C reaches this process twice:
 * the terminal signals its whole foreground group, and `bun run`, in that group, forwards its own
 * copy a few ms later (unless the kernel merged the two). A repeat of the first signal within this
 * long of it is that copy, not a second press asking to exit at once; a press meant so comes later,
 * or is a third. Fly and the tests start the binary itself: no copy.
 */
const FORWARDED_REPEAT_WINDOW_MS = 500

/**
 * Runs `serve` until SIGTERM, SIGINT or SIGHUP; a second signal exits at once. SIGHUP is what a
 * `serve` started from a terminal or an SSH session gets when that closes: its default action ends
 * the process at once, like a SIGKILL (sends in flight left ambiguous, leases and provider slots held
 * until they expire). Nothing here can be reloaded (the configuration is the environment), so it
 * stops as SIGTERM does. `afterStop` runs once serve has stopped, within the same bound (dev stops
 * its embedded Postgres there, which serve needed until then). `forwardedSignals`: a script runner
 * started this process and forwards the terminal's signals to it (FORWARDED_REPEAT_WINDOW_MS).
 */
export async function runUntilSignalled(
  config: Config,
  o: ServeOptions,
  p: { afterStop?: () => Promise<void>; forwardedSignals?: boolean } = {},
): Promise<never> {
  // Listened for before anything starts: the drainers claim and send before serve() returns, and
  // a SIGTERM then must stop them within the grace, not end the process like a SIGKILL. A signal
  // during the start is kept, and the stop begins once the start is done.
  let running: Running | null = null
  let asked: string | null = null
  let signals = 0
  let first: { signal: string; at: number } | null = null
  // Fly's kill_timeout counts from its signal, so this bound does too: a start the database holds
  // up (a connect unanswered for 10 s) spent part of it before the stop could begin, and a bound
  // armed only then let the stop run past kill_timeout, killed without its line.
  const armBound = (signal: string) => {
    // A database that answers nothing (a black-holed route) held the stop in the driver's own
    // timeouts (60 s), past kill_timeout: past the grace and this margin, the stop is given up and
    // said so. Anything it had not recorded is as after a kill: the leases expire and are reclaimed.
    const boundMs = config.worker.shutdownGraceSeconds * 1000 + STOP_MARGIN_MS
    setTimeout(() => {
      const afterSeconds = boundMs / 1000
      // Started, with every send the provider accepted recorded, what is left (give-backs, the
      // registry entry, closing connections) costs nothing but a lease's wait: exit 0, as Fly's
      // stop expects. A start unfinished may have sent already, unknown to us: exit 1.
      const unrecorded = running?.unrecordedSends() ?? null
      if (unrecorded?.length === 0) {
        o.log.warn('stop cut short: exiting', {
          signal,
          afterSeconds,
          unrecorded,
          why: 'every accepted send is recorded; the database was too slow for the rest: rows still leased are reclaimed once their leases expire',
        })
        process.exit(faulted ? EXIT.failure : EXIT.ok)
      }
      o.log.error('stop unfinished: exiting', {
        signal,
        afterSeconds,
        ...(unrecorded && { unrecorded }),
        why: 'the database did not answer in time; unrecorded leases expire and are reclaimed',
      })
      process.exit(EXIT.failure)
    }, boundMs).unref()
  }
  // An error nothing caught ends the run with exit 1 once stopped, not 0.
  let faulted = false
  const stop = (r: Running, signal: string) => {
    void r
      .stop(signal)
      .then(p.afterStop)
      .then(
        // A send accepted but unrecorded is reclaimed as interrupted (serve's last line names it): exit 1.
        () => process.exit(faulted || r.unrecordedSends().length > 0 ? EXIT.failure : EXIT.ok),
        (err) => {
          o.log.error('shutdown failed', { err })
          process.exit(EXIT.failure)
        },
      )
  }
  const onSignal = (signal: string) => {
    const at = performance.now()
    if (
      p.forwardedSignals &&
      first?.signal === signal &&
      at - first.at < FORWARDED_REPEAT_WINDOW_MS
    ) {
      o.log.debug('the same signal again at once: a copy forwarded by bun run, not a second', {
        signal,
      })
      return
    }
    first ??= { signal, at }
    signals += 1
    if (signals > 1) {
      o.log.warn('second signal; exiting now', { signal })
      process.exit(EXIT.failure)
    }
    armBound(signal)
    if (running) stop(running, signal)
    else {
      asked = signal
      o.log.info('signal during the start; stopping once started', { signal })
    }
  }
  /**
   * An exception nothing caught, or a promise rejected and never handled: Bun prints it as text on
   * stderr and the process goes on in a state nobody knows (a drainer's loop ended, say, its leases
   * left to expire). It is logged as a JSON line and serve stops as on SIGTERM, in-flight sends
   * given the grace and their outcomes recorded, then exits 1 (Fly's restart policy starts it
   * again). One during a stop is logged and makes its exit 1 too; the stop's bound still holds.
   */
  const onFault = (origin: 'uncaughtException' | 'unhandledRejection', err: unknown) => {
    o.log.error('uncaught error: stopping', {
      origin,
      err,
      stack: describeStack(err),
    })
    // One during a stop a signal began still makes the exit 1: the stop ran past a fault.
    const stopping = faulted || signals > 0
    faulted = true
    if (stopping) return
    first ??= { signal: origin, at: performance.now() }
    signals += 1
    armBound(origin)
    if (running) stop(running, origin)
    else asked = origin
  }
  process.on('uncaughtException', (err) => onFault('uncaughtException', err))
  process.on('unhandledRejection', (err) => onFault('unhandledRejection', err))
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGHUP', () => onSignal('SIGHUP'))
  running = await serve(config, o)
  // Invariant: a stop asked during the start begins here, in the turn the drainers started in
  // (serve.ts awaits nothing after startDrainers), before any of their statements can answer: no
  // outcome is written, nor a lease found lost, between the signal and the stop's counting of those
  // (settlements.ts stopBegan), so none is missed from the stop's `unrecorded`.
  if (asked !== null) stop(running, asked)
  return new Promise<never>(() => {})
}
