// Primes bounded by a lock timeout: a pool that primes a connection it opens at its first release, before lending it again, and a session's prime.
import type pg from 'pg'
import type { Queryable } from './queryable.ts'
import { RetiringPool } from './read-only-server.ts'

/**
 * How long a prime's statement waits for a table lock. Only DDL or maintenance conflicts with the
 * locks a prime takes (ROW EXCLUSIVE on the outbox, as an INSERT): a CREATE INDEX (SHARE), an ALTER
 * TABLE, a LOCK TABLE. Waiting for one would hold the caller's first statement behind it until
 * statement_timeout (30 s), a read the lock does not block included; the prime is only a head start.
 */
export const PRIME_LOCK_TIMEOUT_MS = 100

export interface PoolPrime {
  /** The statements to run once on a new connection (pickup-primes.ts). */
  run: (connection: Queryable) => Promise<void>
  /** Read as a connection opens: whether this one is primed. */
  wanted: () => boolean
  /**
   * Read at a connection's first release too: false once the process is stopping. A prime then
   * only holds its connection from the stop's own statements (several round trips when the
   * database is slow, which held a stop to its bound), for a pickup that will not come.
   */
  stillWanted: () => boolean
}

/**
 * Invariant: a connection whose prime runs is lent only once it has ended, so no statement of the
 * caller's runs inside the prime's transaction. The prime runs in one transaction whose
 * lock_timeout (set_config local: it ends with it, behind a transaction pooler too) turns a wait
 * for a lock into a failed prime; it is rolled back, as it writes nothing. A failure costs only the
 * head start. Named statements it prepares and the plans it makes outlive the rollback.
 */
export class PrimedPool extends RetiringPool {
  readonly #priming = new WeakMap<pg.Client, Promise<void>>()

  constructor(
    config: pg.PoolConfig,
    onRefused: (err: unknown) => void,
    retired: (client: pg.Client) => boolean,
    prime?: PoolPrime,
  ) {
    super(config, onRefused, retired)
    if (!prime) return
    // Owed at the connection's first release, outside the caller's statements: 'release' is
    // emitted before the connection goes back to the idle list or to a waiting caller, so the
    // prime is under way (and awaited in checkout) before anyone borrows it again.
    const owed = new WeakSet<pg.Client>()
    this.on('connect', (client) => {
      if (prime.wanted()) owed.add(client)
    })
    this.on('release', (err, client) => {
      if (!err && owed.delete(client) && prime.stillWanted())
        this.#priming.set(client, primeBounded(client, prime.run))
    })
  }

  protected override async checkout(): Promise<pg.PoolClient> {
    const client = await super.checkout()
    const priming = this.#priming.get(client)
    if (priming) {
      this.#priming.delete(client)
      await priming
    }
    return client
  }
}

/** Runs `prime` in a transaction bounded by PRIME_LOCK_TIMEOUT_MS; never rejects. */
async function primeBounded(
  client: pg.Client,
  prime: (connection: Queryable) => Promise<void>,
): Promise<void> {
  try {
    await client.query('begin')
  } catch {
    return
  }
  try {
    await client.query(`select set_config('lock_timeout', '${PRIME_LOCK_TIMEOUT_MS}', true)`)
    await prime(client)
  } catch {
    // The head start is lost, nothing else: the caller's statements plan their own.
  } finally {
    await client.query('rollback').catch(() => {})
  }
}

/**
 * Runs `prime` on a session of its own (the shared LISTEN session, never behind a transaction
 * pooler: LISTEN is impossible there) with lock_timeout at PRIME_LOCK_TIMEOUT_MS, reset to the
 * session's default after. Its owner lends the session to no other statement before this ends (its
 * turn lasts until then), so none meets the short lock_timeout.
 */
export async function primeSessionBounded(
  session: Queryable,
  prime: (connection: Queryable) => Promise<void>,
): Promise<void> {
  await session.query(`select set_config('lock_timeout', '${PRIME_LOCK_TIMEOUT_MS}', false)`)
  try {
    await prime(session)
  } finally {
    await session.query('reset lock_timeout')
  }
}
