// The server's TCP keepalive asked for by a session whose locks others read: a vanished client's backend, and its session locks, end within a minute or so, not the system's 2 hours.

/**
 * A process that dies has its kernel close its sockets, and Postgres ends its backends at once; a
 * machine that vanishes (a host failure, a partition, a frozen VM) sends nothing, and the server
 * keeps the backend, and every session-level advisory lock it holds, until its TCP keepalive gives
 * up: Linux's default is 2 h idle and 9 probes 75 s apart. The client's own keepalive (pg's
 * `keepAlive`) is of no help there. The settings are per session (PGC_USERSET, all of Postgres 15
 * to 18) and ignored on a Unix socket; set after connecting, not as startup parameters, which
 * PgBouncer refuses (session-settings.ts). Behind a proxy or pooler they watch only its hop.
 */
export interface ServerKeepalive {
  /** tcp_keepalives_idle: seconds of silence before the first probe. */
  idleSeconds: number
  /** tcp_keepalives_interval: seconds between probes. */
  intervalSeconds: number
  /** tcp_keepalives_count: probes unanswered before the server ends the session. */
  count: number
  /**
   * tcp_user_timeout: how long data sent (a notification) may stay unacknowledged before the server
   * ends the session, and on Linux the bound of the probes too. Without it a notification sent to a
   * vanished client is retransmitted for about 15 minutes, the keepalive never starting meanwhile.
   */
  userTimeoutMs: number
}

/** The shortest give-up: well past any pause of a live network's or machine's. */
const SHORTEST_GIVE_UP_SECONDS = 60

/**
 * What a LISTEN session checked every `checkIntervalMs` asks for (0: a session no check watches,
 * migrate's): the server gives a silent client up after 60 s, or two checks and 20 s if longer, to
 * a multiple of 6 s (half of it idle, then three probes). Never sooner than a live worker notices
 * its own session cut (within two checks and 10 s, when its statements ride the session;
 * deploy/README.md): a server that ended the backend of a worker still sending first would free
 * its send slots under it, and others would send past GRAPH_MAX_CONCURRENCY.
 */
export function serverKeepaliveFor(checkIntervalMs: number): ServerKeepalive {
  const needed = 2 * Math.ceil(checkIntervalMs / 1000) + 20
  const giveUp = 6 * Math.ceil(Math.max(SHORTEST_GIVE_UP_SECONDS, needed) / 6)
  return {
    idleSeconds: giveUp / 2,
    intervalSeconds: giveUp / 6,
    count: 3,
    userTimeoutMs: giveUp * 1000,
  }
}

type Session = { query(text: string, values: unknown[]): Promise<unknown> }

/**
 * Sets `k` on the session for its life (set_config's `false`: not this transaction's alone; the
 * session runs none here). No table read, no lock. Throws what the server (or a proxy) answers.
 */
export async function setServerKeepalive(session: Session, k: ServerKeepalive): Promise<void> {
  await session.query(
    `select set_config('tcp_keepalives_idle', $1::text, false),
            set_config('tcp_keepalives_interval', $2::text, false),
            set_config('tcp_keepalives_count', $3::text, false),
            set_config('tcp_user_timeout', $4::text, false)`,
    [k.idleSeconds, k.intervalSeconds, k.count, k.userTimeoutMs].map(String),
  )
}
