// The chaos soak's shape: its processes, their attempts and grace, the senders, the rejected recipient, Graph's slowest answer.
import { FAST } from '../harness.ts'

/** How a run handles a send whose outcome it never learned (the seed picks one; CHAOS_MODE overrides). */
export const MODES = ['lookup', 'resend', 'hold'] as const
export type Mode = (typeof MODES)[number]

/** CHAOS_WORKERS: more worker processes on the one database (default 3). */
export const WORKERS = Number(process.env.CHAOS_WORKERS ?? 3)
/**
 * CHAOS_HARSH=1: the harsh mix (schedule.ts, graph-mix.ts): more Postgres crashes, some right after
 * an enqueue while the workers' claims commit without waiting for their WAL, listener sessions
 * killed alone, and more sends whose answer Graph loses. Off, a seed replays its old choices.
 */
export const HARSH = process.env.CHAOS_HARSH === '1'
/**
 * CHAOS_OLDER_BINARY: an older release's executable (`bun run build` at an older commit whose
 * migrations this one's extend unchanged) that the odd worker slots run, on the database this
 * release migrated: a rolling deploy's two releases draining together, which every migration's
 * `--! older-binaries-compatible` line promises.
 */
/**
 * CHAOS_PAUSES=1: the pause mix (schedule.ts PAUSE_ACTIONS, worker-configs.ts): one mailbox
 * throttled alone for a while with its own Retry-After (past the 5 s hold, so MAIL_FROM's probe
 * is owed), rows from MAIL_FROM, naming its address or the next one's, scheduled a few seconds
 * out, workers of two configurations (MAIL_FROM, LEASE_SECONDS, HEARTBEAT_SECONDS) as in a rolling
 * deploy completed at the calm, cancels and retries of the rows a probe waits for. Off, a seed
 * replays its old choices.
 */
export const PAUSES = process.env.CHAOS_PAUSES === '1'
/**
 * CHAOS_SLOW_DB=1: the slow-database shape (schedule.ts SLOW_DB_ACTIONS, faults.ts slowDatabase):
 * each worker slot reaches Postgres through its own delaying proxy, which in bursts forwards
 * answers (and sometimes statements) tens of ms to past the send's lease margin late, one slot's
 * or every slot's: heartbeats answer late (a send short of its margin waits for the answer, or is
 * given back unsent), leases end mid-send and are reclaimed, claims and settlements slow. Off, a
 * seed replays its old choices.
 */
export const SLOW_DB = process.env.CHAOS_SLOW_DB === '1'
/**
 * CHAOS_LISTEN_MODE=poll|mixed: workers with LISTEN_MODE=poll (no LISTEN session; the backstop
 * poll, 1 s then, their only wake-up): every slot's (`poll`), or the even slots' beside LISTEN
 * workers on the odd ones (`mixed`). Unset, every worker listens.
 */
export const LISTEN_SHAPE = listenShape(process.env.CHAOS_LISTEN_MODE)
export const pollsOnSlot = (slot: number) =>
  LISTEN_SHAPE === 'poll' || (LISTEN_SHAPE === 'mixed' && slot % 2 === 0)
function listenShape(v: string | undefined): 'poll' | 'mixed' | undefined {
  if (v === undefined || v === '') return undefined
  if (v === 'poll' || v === 'mixed') return v
  throw new Error(`CHAOS_LISTEN_MODE=${v}: poll or mixed`)
}
/**
 * CHAOS_WORKER_ROLE=1: the mailers' DATABASE_URL logs in as a role holding only the deploy guide's
 * step 7 grants (worker-role.ts), LISTEN_DATABASE_URL as the schema's owner, as the guide says; the
 * triggers that run inside the workers' statements (0092/0109, 0112) run with that role's rights.
 * Unset, they log in as the cluster's superuser.
 */
export const WORKER_ROLE = process.env.CHAOS_WORKER_ROLE === '1'
/** The next release's MAIL_FROM (the current one is the harness's MAILBOX). */
export const NEXT_MAIL_FROM = 'outbox-next@contoso.example'
export const OLDER_BINARY = process.env.CHAOS_OLDER_BINARY || undefined
/**
 * CHAOS_GRAPH_TIMEOUT_SECONDS=N: the workers' GRAPH_REQUEST_TIMEOUT_SECONDS (unset, FAST's 2 s). At 2 s
 * a send that met Graph's 401 times out before its new token's request turns slow (TOKEN_SLOW_MS,
 * 3 s), so it is never given back `token_slow`; at 4 s or more it can be. The lease follows
 * (lease-timing.ts: a timeout at most half of it): LEASE_SECONDS twice the timeout, 5 s at least,
 * the next release's 3 s more (worker-configs.ts), and the chaos's durations measured against a
 * lease (outages, slow-database answers: schedule.ts) stretch with it by LEASE_SCALE. Unset, every
 * figure is what it was and a seed replays its old choices.
 */
export const GRAPH_TIMEOUT_SECONDS = graphTimeoutSeconds(process.env.CHAOS_GRAPH_TIMEOUT_SECONDS)
export const LEASES = chaosLeases(GRAPH_TIMEOUT_SECONDS)
export const LEASE_SECONDS = LEASES.current
export const LEASE_SCALE = LEASES.scale

/**
 * Beside a Graph request timeout: the current release's LEASE_SECONDS (FAST's heartbeat), the next
 * one's a longer lease and a slower heartbeat (worker-configs.ts), each within lease-timing.ts's
 * bounds, and the stretch of the current lease over FAST's.
 */
export function chaosLeases(timeoutSeconds: number) {
  const current = Math.max(Number(FAST.LEASE_SECONDS), 2 * timeoutSeconds)
  return {
    current,
    next: current + 3,
    nextHeartbeat: 2,
    scale: current / Number(FAST.LEASE_SECONDS),
  }
}
function graphTimeoutSeconds(v: string | undefined): number {
  if (v === undefined || v === '') return Number(FAST.GRAPH_REQUEST_TIMEOUT_SECONDS)
  const n = Number(v)
  if (Number.isInteger(n) && n >= 1 && n <= 60) return n
  throw new Error(`CHAOS_GRAPH_TIMEOUT_SECONDS=${v}: whole seconds, 1 to 60`)
}
export const runsOlderBinary = (slot: number) => OLDER_BINARY !== undefined && slot % 2 === 1
export const MAX_ATTEMPTS = 6
export const GRACE_SECONDS = 3
export const SENDERS = ['a@contoso.example', 'b@contoso.example', 'c@contoso.example']
export const REJECTED = 'nobody@example.invalid'
// The Graph fake's answers are slowed by up to this much at random moments (a send in flight longer).
export const MAX_LATENCY_MS = 400
