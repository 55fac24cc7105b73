// Graph as this process last reached it: out of reach (no connection) or refusing every token (401 after a fresh one); one shared back-off, one probe at a time, each run logged once.
import { type Clock, monotonicNow } from '../clock.ts'
import { createFailureRun } from '../failure-run.ts'
import type { Logger } from '../log.ts'
import type { SendOutcome } from '../outbox/sender.ts'
import {
  GRAPH_UNAUTHORIZED_CODE,
  GRAPH_UNREACHABLE_CODE,
  type GraphOutageCause,
  holdOffMs,
  type Outage,
  outageWarning,
  STALE_MS,
} from './graph-outage.ts'

type Retry = Extract<SendOutcome, { kind: 'retry' }>

export interface GraphReachability {
  /**
   * Before a request: the outcome it would get now without being made (within the back-off, a
   * probe that failed while this one waited for it, or a wait that outlasted `deadline`, which
   * passes at `deadlineAt` on the monotonic clock, monotonicNow); `probe` when this request is the one that tries after the
   * back-off (its caller calls probeDone once it is over, whatever came of it); `go`.
   */
  admit(
    deadline: AbortSignal,
    deadlineAt: number,
    shutdown: AbortSignal,
  ): Promise<Retry | 'probe' | 'go'>
  /** The outcome any request would get now without being made, else null. */
  holding(): Retry | null
  /** A request met the outage: starts or extends it; the row's outcome. */
  failed(
    cause: GraphOutageCause,
    f: { code: string; message: string; httpStatus?: number; requestId?: string },
  ): Retry
  /** Graph answered (anything but a 401 after a fresh token): an outage ends. */
  answered(): void
  /** The probe's request is over: those waiting for it go on (answered), wait (failed), or the next probes. */
  probeDone(): void
  /** For the gauge: what keeps Graph away now, else null. */
  cause(): GraphOutageCause | null
  /** For readiness: what is wrong and what to check (no address, no secret), else null. */
  warning(): string | null
}

export function createGraphReachability(d: {
  clock: Pick<Clock, 'now' | 'monotonic'>
  log: Logger
}): GraphReachability {
  let outage: Outage | null = null
  /** Ended by its own request only (probeDone), whatever the others' answers. */
  let probe: PromiseWithResolvers<void> | null = null
  const runs = {
    unreachable: createFailureRun({
      log: d.log,
      clock: d.clock,
      msg: 'graph unreachable: mail waits, uncounted',
    }),
    unauthorized: createFailureRun({
      log: d.log,
      clock: d.clock,
      msg: "graph refuses this app's tokens: mail waits, uncounted",
    }),
  }
  const remainingMs = () =>
    outage ? Math.max(0, outage.at + outage.holdOffMs - monotonicNow(d.clock)) : 0
  const outcome = (o: Outage, requestId?: string): Retry => ({
    kind: 'retry',
    code: o.cause === 'unreachable' ? GRAPH_UNREACHABLE_CODE : GRAPH_UNAUTHORIZED_CODE,
    message: o.message,
    throttled: true,
    // The app's problem, not the mailbox's: no mailbox is paused for it.
    pausesMailbox: false,
    // No connection, or Graph's answer for the token: Graph has no message of this request's.
    ambiguous: false,
    // At least a second: a row due at once would only meet the probe's answer again.
    afterMs: Math.max(1_000, remainingMs()),
    ...(o.httpStatus ? { httpStatus: o.httpStatus } : {}),
    ...(requestId ? { requestId } : {}),
  })

  return {
    async admit(deadline, deadlineAt, shutdown) {
      for (;;) {
        if (!outage) return 'go'
        if (remainingMs() > 0) return outcome(outage)
        if (!probe) {
          probe = Promise.withResolvers<void>()
          return 'probe'
        }
        const waitedFor = probe.promise
        const waitedOut = outage
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve()
          if (deadline.aborted) return resolve()
          deadline.addEventListener('abort', onAbort, { once: true })
          waitedFor.then(() => {
            deadline.removeEventListener('abort', onAbort)
            resolve()
          })
        })
        if (shutdown.aborted) {
          return {
            kind: 'retry',
            code: 'aborted',
            message: 'send aborted by shutdown',
            ambiguous: false,
          }
        }
        // The wait outlasted this request's deadline (by the clock too: its timer may not have
        // fired yet when the probe's answer comes): it goes back unsent and uncounted, as the
        // outage's wait, due when the back-off ends or, Graph having answered, in a second. Not on
        // with a fresh deadline: this one bounds the whole send, wait included, so that it ends
        // while the lease the drainer checked surely holds (lease-deadlines.ts keeps a margin of
        // one request timeout); bytes leaving later could outlive a lease whose heartbeats fail,
        // and the reclaimer's lookup come before Graph files the message: sent twice. Nor with what
        // is left of it: the fetch would abort at once as a timeout, an ambiguous attempt, counted
        // and looked up, though no byte left.
        if (deadline.aborted || monotonicNow(d.clock) >= deadlineAt)
          return outcome(outage ?? waitedOut)
      }
    },
    holding: () => (outage && remainingMs() > 0 ? outcome(outage) : null),
    failed(cause, f) {
      const now = monotonicNow(d.clock)
      const prev = outage
      // A request sent before the outage was known fails too: it extends no back-off.
      const hold =
        prev && remainingMs() > 0
          ? { at: prev.at, holdOffMs: prev.holdOffMs, streak: prev.streak }
          : {
              at: now,
              holdOffMs: holdOffMs((prev?.streak ?? 0) + 1),
              streak: (prev?.streak ?? 0) + 1,
            }
      outage = {
        cause,
        code: f.code,
        message: f.message,
        httpStatus: f.httpStatus,
        since: prev?.since ?? d.clock.now(),
        sinceMono: prev?.sinceMono ?? now,
        ...hold,
      }
      // The other cause's run (unreachable, then refusing the token) has ended.
      runs[cause === 'unreachable' ? 'unauthorized' : 'unreachable'].succeeded()
      runs[cause].failed({
        code: f.code,
        message: f.message,
        httpStatus: f.httpStatus,
        retryInMs: outage.holdOffMs,
      })
      return outcome(outage, f.requestId)
    },
    answered() {
      const was = outage
      outage = null
      if (!was) return
      const ended = runs[was.cause].succeeded()
      d.log.info('graph reachable again', {
        cause: was.cause,
        failures: ended?.failures,
        sinceMs: Math.max(0, monotonicNow(d.clock) - was.sinceMono),
      })
    },
    probeDone() {
      const p = probe
      probe = null
      p?.resolve()
    },
    cause: () => (outage && monotonicNow(d.clock) - outage.at < STALE_MS ? outage.cause : null),
    warning: () =>
      !outage || monotonicNow(d.clock) - outage.at >= STALE_MS ? null : outageWarning(outage),
  }
}
