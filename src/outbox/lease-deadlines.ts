// Lease deadlines as this process knows them: until when each held lease is surely still its own.
import { type Clock, monotonicNow } from '../clock.ts'
import { HEARTBEAT_ANSWER_MS, SEND_LEASE_MARGIN_MS } from '../config/lease-timing.ts'
import type { Lease } from './claim.ts'

/**
 * A lease is granted (and extended) for `leaseMs` of database time from the moment its statement
 * ran, which is after this process sent it: the local moment of sending plus `leaseMs`, on a clock
 * that only moves forward (Clock.monotonic), is a safe lower bound of the lease's end. Rows of open-gate transports are recorded as started by the claim
 * and may then wait in the local queue: one whose lease may have ended (heartbeats failing, e.g.
 * during an outage) must not be sent, or a reclaim by another worker could send it again.
 */
export interface LeaseDeadlines {
  /**
   * The leases were granted or extended by a statement sent at `sentAt`, a reading of the monotonic
   * clock (monotonicNow) taken before it was sent.
   */
  confirm(leases: Iterable<Lease>, sentAt: number): void
  /** A heartbeat found the lease taken: it must neither be sent nor settled. */
  markLost(lease: Lease): void
  isLost(lease: Lease): boolean
  /** Still surely held, with `marginMs` to spare for the send itself. */
  holds(lease: Lease): boolean
  /** Surely not ended yet in the database (no margin): not held only for want of time to send. */
  live(lease: Lease): boolean
  /**
   * A statement sent at `sentAt` (as confirm's) asks to extend `leases`: call the function returned
   * once its answer is taken in (confirm, markLost) or it failed.
   */
  asked(leases: Iterable<Lease>, sentAt: number): () => void
  /**
   * Whether `lease` holds, once the answer of a statement in flight for it that could make it hold
   * comes: waited for at most until even that statement's extension would leave no margin, or
   * `signal` aborts; then for one sent meanwhile (a busy row's retry), likewise. At once when no
   * such statement is in flight.
   */
  heldOnceAnswered(lease: Lease, signal: AbortSignal): Promise<boolean>
}

/**
 * `sendTimeoutMs`: how long one send may take (Graph: GRAPH_REQUEST_TIMEOUT_SECONDS). A send must
 * end while its lease surely holds: if heartbeats fail meanwhile, a lease that ends mid-send is
 * reclaimed, and the reclaimer's mailbox lookup can come before the provider has filed the message,
 * so it sends it again. So a send starts only with its timeout and SEND_LEASE_MARGIN_MS left.
 * Invariant: the configuration keeps that under what a lease keeps between two heartbeats that work
 * (`heartbeatMs`, less HEARTBEAT_ANSWER_MS: config/lease-timing.ts), so working heartbeats never hold
 * a send back; the cap below binds only for a lease shorter than the configuration takes (tests').
 */
export function createLeaseDeadlines(
  clock: Clock,
  leaseMs: number,
  o: { sendTimeoutMs?: number; heartbeatMs?: number } = {},
): LeaseDeadlines {
  // A send of an open-gate transport (a file write) is short; a tenth of the lease, at most 5 s.
  const shortMs = Math.min(5_000, leaseMs / 10)
  const marginMs =
    o.sendTimeoutMs === undefined
      ? shortMs
      : Math.max(
          shortMs,
          Math.min(
            o.sendTimeoutMs + SEND_LEASE_MARGIN_MS,
            leaseMs - (o.heartbeatMs ?? leaseMs / 3) - HEARTBEAT_ANSWER_MS,
          ),
        )
  // Deadlines run on the monotonic clock: on the wall clock, one stepped back (an NTP step, a VM
  // resumed) kept a lease "held" here long after it had ended in the database and another worker
  // had reclaimed it, and a row the claim recorded as started was sent by both.
  // WeakMap: a lease that leaves the drainer's books needs no forgetting here.
  const until = new WeakMap<Lease, number>()
  // The statements in flight for each lease: what each was sent at, and its answer.
  type Asking = { sentAt: number; answer: Promise<void> }
  const inFlight = new WeakMap<Lease, Set<Asking>>()
  const holds = (lease: Lease) =>
    monotonicNow(clock) < (until.get(lease) ?? Number.NEGATIVE_INFINITY) - marginMs
  return {
    confirm(leases, sentAt) {
      // `sentAt` is on the monotonic clock too: a wall clock stepped during the statement (back, it
      // left the leases unconfirmed, so not held, and their rows were given back) changes nothing.
      const end = sentAt + leaseMs
      for (const l of leases) {
        if (until.get(l) !== Number.NEGATIVE_INFINITY) until.set(l, end)
      }
    },
    markLost(lease) {
      until.set(lease, Number.NEGATIVE_INFINITY)
    },
    isLost: (lease) => until.get(lease) === Number.NEGATIVE_INFINITY,
    holds,
    live: (lease) => monotonicNow(clock) < (until.get(lease) ?? Number.NEGATIVE_INFINITY),
    asked(leases, sentAt) {
      const { promise: answer, resolve } = Promise.withResolvers<void>()
      const asking = { sentAt, answer }
      const mine = [...leases]
      for (const l of mine) {
        const now = inFlight.get(l)
        if (now) now.add(asking)
        else inFlight.set(l, new Set([asking]))
      }
      return () => {
        for (const l of mine) inFlight.get(l)?.delete(asking)
        resolve()
      }
    },
    async heldOnceAnswered(lease, signal) {
      // Fencing: only an answer that extended the lease moves its deadline (confirm, from the
      // statement's sending); waiting changes when the send is decided, never on what. An answer
      // that did not (the heartbeat skipped the row another transaction held: busy) leaves the
      // wait to a statement sent since (its retry, which waits for that lock). Ends: a turn goes on
      // only after an answer, which leaves the set; else the last statement's bound, or `signal`.
      let answeredOne = true
      const lost = () => until.get(lease) === Number.NEGATIVE_INFINITY
      while (answeredOne && !holds(lease) && !signal.aborted && !lost()) {
        const now = monotonicNow(clock)
        const asking = [...(inFlight.get(lease) ?? [])]
        const waitMs = Math.max(0, ...asking.map((a) => a.sentAt + leaseMs - marginMs - now))
        if (waitMs <= 0) break
        answeredOne = false
        const answered = new AbortController()
        const stop = () => answered.abort()
        signal.addEventListener('abort', stop, { once: true })
        try {
          await Promise.race([
            ...asking.map((a) =>
              a.answer.then(() => {
                answeredOne = true
                stop()
              }),
            ),
            clock.sleep(waitMs, answered.signal),
          ])
        } finally {
          stop()
          signal.removeEventListener('abort', stop)
        }
      }
      return holds(lease)
    },
  }
}
