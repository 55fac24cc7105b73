// A server that refused a write as read-only (SQLSTATE 25006): the database's connections opened before that answer are not used again.
import type pg from 'pg'
import { monotonicNow, systemClock } from '../clock.ts'
import type { FailureRun } from '../failure-run.ts'
import { READ_ONLY_SQLSTATE } from './sqlstate.ts'
import { StartupTimeoutPool } from './startup-timeout-pool.ts'

type Query = (this: pg.Client, ...args: unknown[]) => unknown
type Callback = (err: unknown, result?: unknown) => void

/**
 * After a retirement, refusals on the connections made since retire them no sooner than this: a URL
 * that names a server read-only for good (a standby) would otherwise cost a new connection, and a
 * LISTEN reconnect and sweep, per refused write (2-4 a second under API retries and claim backoff).
 */
export const READ_ONLY_HOLD_OFF_MS = 5_000
/** Refusals this far apart are two episodes (each logged), not one that lasts. */
export const READ_ONLY_EPISODE_GAP_MS = 60_000

export interface ReadOnlyEras {
  /** A client class like `Base` whose clients remember the era they were made in; a 25006 on one ends it. */
  Client: typeof pg.Client
  /** Made before the era's last 25006: close it rather than use it. */
  retired(client: pg.Client): boolean
  /**
   * Resolves when the era current now ends: a connection made until then, of `Client` or not (a
   * LISTEN session on a URL of its own, which never writes), may reach the old primary. `first`:
   * the end began an episode of refusals (the retirements after it, one per hold-off, did not).
   * `signal` ends the wait (the promise then never settles) and drops it: a session that ends
   * first leaves nothing waiting on an era that may last for weeks.
   */
  ended(signal?: AbortSignal): Promise<{ first: boolean }>
  /** When the current episode of refused writes began (on the monotonic `monotonicNow`), or null when none is open. */
  refusingSince(): number | null
  /** The server was seen taking writes again (a probe): the episode is over. */
  accepted(): void
}

export interface ReadOnlyErasOptions {
  /**
   * Hears every write refused as read-only on a connection of the current era, an episode as one
   * run (the log: its start, then every 5 minutes while it lasts); an episode after a gap starts
   * a new run.
   */
  refusals: FailureRun
  /** Hears the end of an episode that `accepted` closed: how long, how many writes refused. */
  onAccepted?: (ended: { refusedMs: number; refusedWrites: number }) => void
  monotonicNow?: () => number
  holdOffMs?: number
}

/**
 * A failover that leaves the old primary up read-only leaves every connection opened before it
 * reaching that server: kept, each fails every write until it drops by itself (pg's pool keeps a
 * connection whatever its statements answered). So the first statement answered 25006 on a
 * connection of the current era ends the era: every connection made before (the pool's, the shared
 * LISTEN session) is closed at its next checkout, not used, and the next statement opens a new one,
 * which reaches the new primary through the URL (DNS). A LISTEN session on a URL of its own is
 * never checked out and never writes: it hears the end (`ended`) and reconnects. A server that
 * stays read-only (a standby named by the URL) keeps refusing on the new connections: within an
 * episode (refusals less than READ_ONLY_EPISODE_GAP_MS apart, not closed by `accepted`) an era ends
 * at most once per hold-off, so it costs one new connection (and LISTEN reconnect) per hold-off, not
 * per failed write. The first refusal of an episode ends the era at once. Nothing is asked of the
 * server: a number per connection, a comparison per checkout.
 */
export function readOnlyEras(Base: typeof pg.Client, o: ReadOnlyErasOptions): ReadOnlyEras {
  const elapsed = o.monotonicNow ?? (() => monotonicNow(systemClock))
  const holdOffMs = o.holdOffMs ?? READ_ONLY_HOLD_OFF_MS
  let era = 0
  // Who waits for the current era's end; a wait whose signal aborted is removed at once.
  const waiting = new Set<(end: { first: boolean }) => void>()
  let episode: { since: number; lastAt: number; endedAt: number } | null = null
  const born = new WeakMap<pg.Client, number>()
  const noted = (client: pg.Client, err: unknown) => {
    if ((err as { code?: unknown } | null)?.code !== READ_ONLY_SQLSTATE) return
    // Statements failing together on connections of an ended era end nothing more: a connection
    // made since (perhaps to the new primary) is kept.
    if (born.get(client) !== era) return
    const at = elapsed()
    // A clock set back counts as a gap: an episode is never held open, nor a retirement held off,
    // by a time it cannot compare.
    const gap = episode === null ? Number.NaN : at - episode.lastAt
    const first = !(gap >= 0 && gap <= READ_ONLY_EPISODE_GAP_MS)
    const current =
      first || episode === null
        ? { since: at, lastAt: at, endedAt: Number.NEGATIVE_INFINITY }
        : episode
    episode = current
    current.lastAt = at
    // An episode that ended by its gap ended without a word; this refusal begins the next run.
    if (first) o.refusals.succeeded()
    o.refusals.failed(err)
    const sinceEnd = at - current.endedAt
    if (sinceEnd >= 0 && sinceEnd < holdOffMs) return
    current.endedAt = at
    era += 1
    const waiters = [...waiting]
    waiting.clear()
    for (const w of waiters) w({ first })
  }
  const plain = Base.prototype.query as unknown as Query
  class EraClient extends Base {
    constructor(config?: string | pg.ClientConfig) {
      super(config)
      born.set(this, era)
    }
  }
  const query: Query = function (this: pg.Client, ...args: unknown[]) {
    const last = args.at(-1)
    if (typeof last === 'function') {
      args[args.length - 1] = (err: unknown, result?: unknown) => {
        if (err) noted(this, err)
        ;(last as Callback)(err, result)
      }
      return plain.apply(this, args)
    }
    const answer = plain.apply(this, args) as Promise<unknown> | undefined
    // A submittable (a cursor) reports through itself: none of ours writes.
    if (typeof answer?.then !== 'function') return answer
    return answer.then(undefined, (err: unknown) => {
      noted(this, err)
      throw err
    })
  }
  EraClient.prototype.query = query as unknown as pg.Client['query']
  return {
    Client: EraClient,
    retired: (client) => (born.get(client) ?? era) < era,
    ended: (signal) =>
      new Promise((resolve) => {
        if (signal?.aborted) return
        const drop = () => waiting.delete(resolved)
        const resolved = (end: { first: boolean }) => {
          signal?.removeEventListener('abort', drop)
          resolve(end)
        }
        waiting.add(resolved)
        signal?.addEventListener('abort', drop, { once: true })
      }),
    refusingSince: () => episode?.since ?? null,
    accepted() {
      if (episode === null) return
      const refusedWrites = o.refusals.succeeded()?.failures ?? 0
      o.onAccepted?.({ refusedMs: elapsed() - episode.since, refusedWrites })
      episode = null
    },
  }
}

/** A pool that closes a retired connection at checkout instead of lending it; the caller gets another. */
export class RetiringPool extends StartupTimeoutPool {
  readonly #retired: (client: pg.Client) => boolean

  constructor(
    config: pg.PoolConfig,
    onRefused: (err: unknown) => void,
    retired: (client: pg.Client) => boolean,
  ) {
    super(config, onRefused)
    this.#retired = retired
  }

  protected override async checkout(): Promise<pg.PoolClient> {
    for (;;) {
      const client = await super.checkout()
      if (!this.#retired(client)) return client
      // Released with an error, a client is closed and removed, not kept idle.
      client.release(true)
    }
  }
}
