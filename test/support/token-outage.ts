// An Entra outage, backoff cycle by backoff cycle: a worker wired as `serve` wires Graph, its token source on a manual clock.

import type { Clock } from '../../src/clock.ts'
import { systemClock } from '../../src/clock.ts'
import type { WorkerConfig } from '../../src/config.ts'
import { type Logger, silentLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import type { DrainerDeps } from '../../src/outbox/drainer-deps.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { createGraphTransport, type GraphTransport } from '../../src/transport/graph-transport.ts'
import { boundedLatches } from './bounded-latches.ts'
import type { TestDb } from './db.ts'
import { createTestEngine, enqueue, type TestEngine } from './engine.ts'
import { pollUntil } from './events.ts'
import {
  type FakeGraph,
  graphConfigFor,
  startFakeGraph,
  type TestCertificate,
  type TokenFault,
} from './fake-graph.ts'

/** Longer than the token source's longest backoff (5 minutes). */
export const PAST_ANY_BACKOFF_MS = 10 * 60_000
export const ENTRA_500 = { status: 500, error: 'server_error', aadsts: 50000 }
/** A held claim's waits: a wake's claim round, or the test's steps before its release (a 10 s poll). */
const CLAIM_HOLD_MS = 20_000

/** The token source's clock: its shared backoff passes when the test says, not in real time. */
export class ManualClock implements Clock {
  constructor(private t = Date.now()) {}
  now = () => this.t
  sleep = async () => {}
  advance(ms: number) {
    this.t += ms
  }
}

export interface OutageRun {
  clock: ManualClock
  fake: FakeGraph
  transport: GraphTransport
  engine: TestEngine
  ids: string[]
  /** Each token request's result as onTokenRefresh saw it ('failure AADSTS50000', 'success'). */
  refreshes: string[]
  /** Rows the worker's claims took, and claim statements run (empty ones included). */
  claims: { rows: number; statements: number }
  /** Provider slots the worker's sends took from the shared gate. */
  permits: () => number
  /**
   * Holds the worker's next claim before its statement: `entered` once a claim round waits there,
   * which runs its statement once `release()` is called. Both waits bounded, named past it.
   */
  holdNextClaim(): { entered: Promise<void>; release(): void }
  stop(): Promise<void>
}

/**
 * Entra answers 500 until told otherwise; `rows` rows are enqueued. The worker gets the Graph
 * transport's pieces as database-engines.ts gives them: the shared send gate (no pacing unless
 * `ratePerMinute` says, so only the outage holds rows back) and `sendBlockedForMs`.
 */
export async function startOutage(
  t: TestDb,
  o: {
    rows: number
    cert: TestCertificate
    config?: Partial<WorkerConfig>
    options?: (i: number) => Record<string, unknown>
    /** What Entra answers meanwhile; default a 500 (AADSTS50000); null: it issues tokens. */
    tokenFault?: TokenFault | null
    /** The transport's fetch (default the real one): e.g. one that cannot reach Graph for a while. */
    fetch?: typeof fetch
    /**
     * The rows' earlier send was interrupted (send_started_at set before the worker starts), and
     * the worker looks them up in the mailbox (GRAPH_MAILBOX_LOOKUP) before sending again, or,
     * with `lookup: false`, leaves it to its AMBIGUOUS_SEND_POLICY.
     */
    interrupted?: boolean
    /** With `interrupted`: whether the worker looks them up (default true). */
    lookup?: boolean
    /** The worker's AMBIGUOUS_SEND_POLICY (default resend). */
    ambiguousPolicy?: 'resend' | 'hold'
    /** The worker's log (default silent). */
    log?: Logger
    /** The shared gate's MAILBOX_RATE_PER_MINUTE (default 0: no pacing, only the outage holds rows back). */
    ratePerMinute?: number
    /** The worker's other pieces: its statements' Kysely (one holding an answer), its backstop poll. */
    deps?: Pick<Partial<DrainerDeps>, 'db' | 'pollIntervalMs'>
    /** The shared gate's statements' Kysely (default the test database's): one holding an answer. */
    gateDb?: DrainerDeps['db']
    /** The worker's registry entry notes the credential's refusal, as `serve` wires it (sql/0198). */
    notesRefusal?: true
  },
): Promise<OutageRun> {
  const clock = new ManualClock()
  const lookup = o.interrupted === true && o.lookup !== false
  const refreshes: string[] = []
  const fake = await startFakeGraph({ certificates: [o.cert.certPem], now: clock.now })
  if (o.tokenFault !== null)
    fake.setFaults({ token: Array.from({ length: 10_000 }, () => o.tokenFault ?? ENTRA_500) })
  const transport = createGraphTransport(
    graphConfigFor(fake, {
      certificate: o.cert.certPem,
      privateKey: o.cert.keyPem,
      mailboxLookup: lookup,
    }),
    'sender@example.com',
    {
      fetch: o.fetch ?? fetch,
      clock,
      log: o.log ?? silentLogger,
      onTokenRefresh: (outcome, code) => refreshes.push(`${outcome} ${code ?? ''}`.trim()),
      // The rows wait for the hung request as long as a test takes (a stop mid-wait), not 3 s of
      // real time (token-wait-give-back.test.ts gives them back).
      tokenSlowMs: 600_000,
    },
  )
  const claims = { rows: 0, statements: 0, inFlight: 0 }
  let claimHold: { entered: () => void; released: () => Promise<void> } | null = null
  const gate = createPgSendGate({
    db: o.gateDb ?? t.statements.db,
    clock: systemClock,
    log: silentLogger,
    holder: 'test-worker',
    maxConcurrency: 4,
    ratePerMinute: o.ratePerMinute ?? 0,
    slotTtlMs: 20_000,
  })
  let permits = 0
  const engine = createTestEngine(t, {
    config: o.config ?? {},
    deps: {
      ...(o.log ? { log: o.log } : {}),
      ...o.deps,
      sender: transport.sender,
      gate: {
        ...gate,
        acquire: async (...args) => {
          const p = await gate.acquire(...args)
          if (p && !('pausedForMs' in p)) permits++
          return p
        },
      },
      sendBlockedForMs: transport.blockedForMs,
      sendBlockedBy: transport.blockedBy,
      tokenCame: transport.onTokenCame,
      ...(o.notesRefusal && {
        credentialRefusal: transport.credentialRefusal,
        credentialRefusalChanged: transport.onCredentialRefusalChanged,
      }),
      sendTimeoutMs: 5_000,
      ...(o.ambiguousPolicy && { ambiguousPolicy: o.ambiguousPolicy }),
      ...(lookup
        ? {
            lookup: (mail, signal) =>
              transport.sender.lookupSentMessage(mail.from.address, mail.outboxId, signal),
          }
        : {}),
      claim: async (db, p) => {
        claims.inFlight++
        const hold = claimHold
        claimHold = null
        if (hold) {
          hold.entered()
          await hold.released()
        }
        try {
          const r = await claimBatch(db, p)
          claims.rows += r.leases.length
          claims.statements++
          return r
        } finally {
          claims.inFlight--
        }
      },
    },
  })
  const ids: string[] = []
  const enqueueRows = async () => {
    for (let i = 0; i < o.rows; i++) ids.push(await enqueue(t, undefined, o.options?.(i) ?? {}))
  }
  if (o.interrupted) {
    // Marked before the worker sees them: its start sweeps them.
    await enqueueRows()
    await t.pool.query(
      `update mailer.email_outbox set send_started_at = now() - interval '2 minutes'`,
    )
    await engine.start()
  } else {
    await engine.start()
    await enqueueRows()
  }
  const run: OutageRun & { claimsInFlight: () => number } = {
    clock,
    fake,
    transport,
    engine,
    ids,
    refreshes,
    claims,
    permits: () => permits,
    holdNextClaim() {
      const latches = boundedLatches(CLAIM_HOLD_MS)
      const entered = latches.make('the held claim entered (a claim round came)')
      const released = latches.make('the held claim released by the test')
      claimHold = { entered: entered.resolve, released: () => released.wait() }
      const enteredWait = entered.wait()
      // Awaited by the test at once; one that failed before leaves the run-out to no one.
      enteredWait.catch(() => undefined)
      return { entered: enteredWait, release: released.resolve }
    },
    claimsInFlight: () => claims.inFlight,
    async stop() {
      await engine.stop()
      await fake.stop()
    },
  }
  return run
}

/**
 * Backoff cycle `k` (1-based): past the first, Entra's backoff passes and so do the rows' waits
 * (database time); then waits until the worker is done with the cycle: Entra asked `k` times, no
 * claim or send under way, and every due row either met (none left due) or held back by the
 * worker while no token can be had.
 */
export async function outageCycle(t: TestDb, run: OutageRun, k: number): Promise<void> {
  if (k > 1) {
    run.clock.advance(PAST_ANY_BACKOFF_MS)
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() where status = 'pending' and send_at > now()`,
    )
    run.engine.drainer.wake()
  }
  const claimsInFlight = (run as OutageRun & { claimsInFlight: () => number }).claimsInFlight
  await pollUntil(async () => {
    if (run.fake.tokenRequests.length < k) return undefined
    if (claimsInFlight() > 0 || run.engine.drainer.status().inFlight > 0) return undefined
    const r = await t.pool.query(
      `select count(*) filter (where status = 'sending')::int as sending,
              count(*) filter (where status = 'pending' and send_at <= now())::int as due
         from mailer.email_outbox`,
    )
    const { sending, due } = r.rows[0]
    if (claimsInFlight() > 0 || run.engine.drainer.status().inFlight > 0) return undefined
    return sending === 0 && (due === 0 || run.transport.blockedForMs() > 0) ? true : undefined
  }, 30_000)
}
