// The LISTEN session's side of the statement route: what the listener calls to lend its session to statements.
import type pg from 'pg'

/** The LISTEN session's side of the route (the listener drives it). */
export interface SharedSession {
  /** A client configured like the pool's (prepared statements, timeouts), for the LISTEN session. */
  newClient(applicationName: string): pg.Client
  /**
   * A `newClient` client's connect failed only for a startup parameter the pool now sends no more
   * (statement_timeout, refused by a pooler: the pool may learn it just then, or have since the
   * client was made): a new client connects at once, nothing failed.
   */
  refusedAtStartup(err: unknown): boolean
  /** The session is listening on `client`: statements may take it; `answered` hears each answer. */
  attach(client: pg.Client, answered?: () => void): void
  /** The session is going: no new statement takes it; resolves when the one on it (if any) ended. */
  detach(): Promise<void>
  /**
   * Runs the owner's own statement on the session in turn (a client runs one query at a time); a
   * statement of the route that comes meanwhile waits for it and takes the session after. The turn
   * lasts until `statement` settles, which must leave nothing of its own on the session. Once
   * `overdue` aborts, statements of the route that wait for it, or come, take the pool instead.
   */
  inTurn<T>(statement: () => Promise<T>, overdue?: AbortSignal): Promise<T>
  /**
   * Whether a session that starts listening now is primed: false once the process is stopping
   * (DbHandle.stopBegan), as for the pool's connections. Unset: always.
   */
  primeWanted?(): boolean
}
