// A pg pool whose statement_timeout rides in the startup packet until a pooler refuses it; then its connections go without.
import pg from 'pg'

// PgBouncer accepts only the startup parameters it tracks unless its admin lists others in
// ignore_startup_parameters (empty by default, as on Fly's Managed Postgres): statement_timeout
// fails the whole connection with 08P01, before anything ran.
const REFUSED = /unsupported startup parameter.*\bstatement_timeout\b/i

export function refusesStartupTimeout(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null
  return e?.code === '08P01' && typeof e.message === 'string' && REFUSED.test(e.message)
}

/** pg.Pool.connect's callback form: pg.Pool's own query() checks a client out by it. */
type ConnectCallback = (
  err: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void

/**
 * The first refusal drops statement_timeout from `options` (which every later client of the pool is
 * made from) for good, calls `onRefused` once, and connects again: no caller sees it. Statements
 * are then bounded only by the client-side query_timeout.
 */
export class StartupTimeoutPool extends pg.Pool {
  readonly #onRefused: (err: unknown) => void

  constructor(config: pg.PoolConfig, onRefused: (err: unknown) => void) {
    super(config)
    this.#onRefused = onRefused
  }

  /** The statement_timeout a new client should send (undefined once a pooler refused it). */
  get startupTimeout(): number | undefined {
    return this.options.statement_timeout || undefined
  }

  /**
   * True when `err` is the refusal, met by a client of the pool or one made with `startupTimeout`
   * (a shared LISTEN session's): from then on no client sends statement_timeout.
   */
  dropsStartupTimeout(err: unknown): boolean {
    if (!refusesStartupTimeout(err)) return false
    if (this.options.statement_timeout) {
      this.options.statement_timeout = undefined
      this.#onRefused(err)
    }
    return true
  }

  /**
   * A client to lend, as a promise: what connect() answers in both its forms. A subclass that
   * checks a client out its own way (read-only-server.ts, primed-pool.ts) overrides this, never
   * connect(), so the callback form keeps to pg's contract in one place.
   */
  protected checkout(): Promise<pg.PoolClient> {
    return super.connect().catch((err: unknown) => {
      if (!this.dropsStartupTimeout(err)) throw err
      return super.connect()
    })
  }

  override connect(): Promise<pg.PoolClient>
  override connect(callback: ConnectCallback): void
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | undefined {
    const connected = this.checkout()
    if (!callback) return connected
    connected.then(
      (client) => callback(undefined, client, (release) => client.release(release as boolean)),
      (err: Error) => callback(err, undefined, () => {}),
    )
    return undefined
  }
}
