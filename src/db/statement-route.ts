// Statement route: a statement that runs on its own goes over the LISTEN session when it is free, so an idle worker holds one connection.
import type { Kysely, PostgresDialectConfig, PostgresPoolClient } from 'kysely'
import type pg from 'pg'
import { monotonicNow, systemClock } from '../clock.ts'
import type { Queryable } from './queryable.ts'
import type { Database } from './schema.ts'
import type { SharedSession } from './shared-session.ts'
import { singleStatementDb } from './single-statement-db.ts'

export interface StatementRoute extends Queryable {
  /** Kysely for statements that run on their own (autocommit); beginning a transaction throws. */
  db: Kysely<Database>
  /** Which connection the next statement would take. */
  next(): 'session' | 'pool'
  /**
   * When a statement of the route last answered (on `now`'s clock), session or pool; null before
   * the first answer and after a statement failed, whatever the cause, until the next answer.
   */
  answeredAt(): number | null
  /**
   * An answer on a pool connection taken outside the route (serve's schema check at start, whose
   * statement-mode probe needs a connection of its own): answeredAt stands on it as on the route's.
   */
  noteAnswer(): void
}

/**
 * The LISTEN session is open anyway: a statement of the route takes it whenever no other statement
 * of the route is on it, and the pool (which then closes every idle connection) takes the rest. So
 * an idle worker's statements (backstop poll, registry beat, readiness, a scrape's) hold no second
 * connection, and a row after a quiet spell is claimed on a session where the claim is prepared and
 * planned already, waiting for neither a reconnect nor a cold plan. Busy, the session is one more
 * connection beside the pool's. `attach` a session only while it listens on the pool's database.
 */
export function createStatementRoute(
  pool: pg.Pool,
  clients: Pick<SharedSession, 'newClient' | 'refusedAtStartup'> & {
    /** The session reaches a server that refused a write as read-only (see read-only-server): drop it. */
    retired?: (client: pg.Client) => boolean
  },
  now: () => number = () => monotonicNow(systemClock),
): { route: StatementRoute; session: SharedSession } {
  let session: pg.Client | null = null
  let answered: (() => void) | undefined
  let onSession: Promise<void> | null = null
  let ended: (() => void) | null = null
  // The turn on the session is the owner's own (the listener's prime or check), not a statement of
  // the route, and not past its bound: a statement of the route waits for it.
  let ownerTurn = false
  // Statements of the route waiting out the owner's turn (onSession only ever resolves): the first
  // to resume takes the session.
  let waitingForOwner = 0

  const claimTurn = () => {
    const done = Promise.withResolvers<void>()
    onSession = done.promise
    ended = done.resolve
  }
  const sessionFree = () => session !== null && onSession === null
  const take = (): pg.Client | null => {
    if (!sessionFree()) return null
    if (session && clients.retired?.(session)) {
      // Opened before a statement met a read-only server (a failover): its LISTEN may be on the old
      // primary too. Ended, it is lost to its owner, who opens another; this statement takes the pool.
      const retired = session
      session = null
      answered = undefined
      retired.end().catch(() => {})
      return null
    }
    claimTurn()
    return session
  }
  const free = () => {
    ended?.()
    onSession = ended = null
  }

  // An answer shows the database there (readiness may stand on it) and, on the session, the
  // session's socket alive: its owner may skip a check of its own.
  let lastAnswerAt: number | null = null
  const heard = <T>(p: Promise<T>, viaSession: boolean): Promise<T> =>
    p.then(
      (r) => {
        lastAnswerAt = now()
        if (viaSession) answered?.()
        return r
      },
      (error: unknown) => {
        lastAnswerAt = null
        throw error
      },
    )

  // Kysely reserves a connection per statement and releases it after: the reservation is the turn.
  const leases = new WeakMap<pg.Client, PostgresPoolClient>()
  const lease = (client: pg.Client): PostgresPoolClient => {
    let l = leases.get(client)
    if (!l) {
      l = {
        query: ((text: string, values: readonly unknown[]) =>
          heard(
            client.query(text, values as unknown[]),
            true,
          )) as unknown as PostgresPoolClient['query'],
        release: free,
      }
      leases.set(client, l)
    }
    return l
  }
  const routed = {
    Client: (pool as unknown as { Client: PostgresDialectConfig['controlClient'] }).Client,
    options: pool.options,
    connect: async (): Promise<PostgresPoolClient> => {
      // The owner's turn is short, and bounded: a statement that finds it on the session waits for
      // it rather than open a pool connection, and then answers on the session, which shows it
      // alive. (The listener's check and the backstop poll fall due together, both timed from the
      // session's start: a poll that took the pool cost a second connection, and its answer, not
      // heard on the session, a second check per poll interval.) Past the bound it takes the pool.
      waitingForOwner += 1
      while (ownerTurn && onSession) await onSession
      waitingForOwner -= 1
      const s = take()
      if (s) return lease(s)
      const c = (await pool.connect().catch((error: unknown) => {
        lastAnswerAt = null
        throw error
      })) as unknown as PostgresPoolClient
      return {
        query: ((text: string, values: readonly unknown[]) =>
          heard(c.query(text, values), false)) as unknown as PostgresPoolClient['query'],
        release: () => c.release(),
      }
    },
    end: async () => {},
  }
  // A statement on the session taken at once: heard and the session freed in the answer's own
  // callback, before its caller's turn (as the try/finally below frees it), and one turn of the
  // event loop sooner (a pickup's claim answer goes this way to its send).
  const onTakenSession = <R extends pg.QueryResultRow>(
    client: pg.Client,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> => {
    let answer: Promise<pg.QueryResult<R>>
    try {
      answer = client.query<R>(text, values)
    } catch (error) {
      free()
      return Promise.reject(error)
    }
    return answer.then(
      (r) => {
        try {
          lastAnswerAt = now()
          answered?.()
        } finally {
          free()
        }
        return r
      },
      (error: unknown) => {
        lastAnswerAt = null
        free()
        throw error
      },
    )
  }
  // A statement's turn, Kysely's (db) or not: a connection reserved, one query, released.
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => {
    // The session free (no owner's turn on it): taken at once, as connect would take it, with no
    // turn of the event loop before the statement goes out (a pickup's claim takes this way).
    const taken = ownerTurn ? null : take()
    return taken ? onTakenSession<R>(taken, text, values) : queryConnected<R>(text, values)
  }
  const queryConnected = async <R extends pg.QueryResultRow>(text: string, values: unknown[]) => {
    const client = await routed.connect()
    try {
      // pg's full result, typed by Kysely's narrower client interface.
      return (await client.query<R>(text, values)) as unknown as pg.QueryResult<R>
    } finally {
      client.release()
    }
  }
  const db = singleStatementDb(routed, query)

  return {
    route: {
      db,
      // In the owner's turn the session is the next statement's only if none waits for it already.
      next: () => (sessionFree() || (ownerTurn && waitingForOwner === 0) ? 'session' : 'pool'),
      answeredAt: () => lastAnswerAt,
      noteAnswer: () => {
        lastAnswerAt = now()
      },
      query,
    },
    session: {
      newClient: clients.newClient,
      refusedAtStartup: clients.refusedAtStartup,
      attach(client, onAnswer) {
        session = client
        answered = onAnswer
      },
      async detach() {
        session = null
        answered = undefined
        while (onSession) await onSession
      },
      async inTurn(statement, overdue) {
        while (onSession) await onSession
        claimTurn()
        ownerTurn = true
        // Past its bound the turn keeps the session (a client runs one query at a time) under a
        // turn of its own: the statements waiting for it, woken, find it taken and take the pool.
        const lend = () => {
          if (!ownerTurn) return
          ownerTurn = false
          const wake = ended
          claimTurn()
          wake?.()
        }
        overdue?.addEventListener('abort', lend)
        if (overdue?.aborted) lend()
        try {
          return await statement()
        } finally {
          overdue?.removeEventListener('abort', lend)
          ownerTurn = false
          free()
        }
      },
    },
  }
}
