// A test worker wired as serve wires Graph (createTransport) with mailbox lookups on: the transport's sender, gate and lookup against a fake Graph.
import type { Clock } from '../../src/clock.ts'
import { loadConfig } from '../../src/config.ts'
import type { DbHandle } from '../../src/db/open.ts'
import { type Logger, silentLogger } from '../../src/log.ts'
import type { Sender } from '../../src/outbox/sender.ts'
import { createTransport } from '../../src/transport-wiring.ts'
import type { TestDb } from './db.ts'
import { createTestEngine, type TestEngine } from './engine.ts'
import { type FakeGraph, graphEnvFor } from './fake-graph.ts'

export interface GraphWorkerOptions {
  workerId: string
  /** MAIL_FROM. */
  mailFrom: string
  /** LOOKUP_GRACE_SECONDS: each caller picks it against how soon its fake files a message. */
  graceSeconds: number
  /** GRAPH_MAILBOX_LOOKUP; on when not given. */
  lookups?: boolean
  /** AMBIGUOUS_SEND_POLICY; resend, its default, when not given. */
  policy?: 'resend' | 'hold'
  /** GRAPH_REQUEST_TIMEOUT_SECONDS, also the worker's send deadline; 2 when not given. */
  timeoutSeconds?: number
  /** A lease this long with a heartbeat every second; the test engine's 30 s when not given. */
  leaseSeconds?: number
  /** The route to the database (a proxy's) for the worker's statements and its gate; `t`'s when not given. */
  handle?: DbHandle
  /** MAIL_FROM_ALLOWED as the drainer holds it (the transport is not told). */
  allowedSenders?: string[]
  /** The drainer's log; silent when not given. */
  log?: Logger
  /** MAILBOX_RATE_PER_MINUTE; 0 (no pacing) when not given. */
  ratePerMinute?: number
  /** Wraps the Graph sender (something to do as a send is under way); as it is when not given. */
  wrapSender?: (graph: Sender) => Sender
  /** The drainer's clock; the system's when not given. */
  clock?: Clock
  /** RETRY_BASE_SECONDS (the test engine's RETRY_MAX_SECONDS, 60, caps it); 1 when not given. */
  retryBaseSeconds?: number
}

/** Started by the caller, which also stops it. Retries come a second apart unless `retryBaseSeconds` says. */
export function graphWorker(t: TestDb, fake: FakeGraph, o: GraphWorkerOptions): TestEngine {
  const policy = o.policy ?? 'resend'
  const timeoutSeconds = o.timeoutSeconds ?? 2
  const config = loadConfig(
    {
      ...graphEnvFor(fake),
      MAIL_FROM: o.mailFrom,
      GRAPH_CLIENT_SECRET: 'right',
      GRAPH_MAILBOX_LOOKUP: String(o.lookups !== false),
      GRAPH_REQUEST_TIMEOUT_SECONDS: String(timeoutSeconds),
      AMBIGUOUS_SEND_POLICY: policy,
      MAILBOX_RATE_PER_MINUTE: String(o.ratePerMinute ?? 0),
      // The configuration's bound on the timeout (at most half the lease) reads it; a test's lease
      // below LEASE_SECONDS' least (5) is the engine's alone, beside the default 60 s here.
      ...(o.leaseSeconds && o.leaseSeconds >= 5 && { LEASE_SECONDS: String(o.leaseSeconds) }),
    },
    { requireDatabase: false },
  )
  const transport = createTransport(config, silentLogger)
  return createTestEngine(t, {
    workerId: o.workerId,
    ...(o.handle && { handle: o.handle }),
    config: {
      retryBaseSeconds: o.retryBaseSeconds ?? 1,
      ...(o.leaseSeconds && { leaseSeconds: o.leaseSeconds, heartbeatSeconds: 1 }),
    },
    deps: {
      sender: o.wrapSender?.(transport.senderFor('test')) ?? transport.senderFor('test'),
      gate: transport.gateFor(o.handle ?? t, o.workerId),
      lookup: o.lookups === false ? null : transport.lookupFor('test'),
      sendBlockedForMs: transport.blockedForMs,
      sendTimeoutMs: timeoutSeconds * 1000,
      mailFrom: o.mailFrom,
      ambiguousPolicy: policy,
      lookupGraceSeconds: o.graceSeconds,
      ...(o.allowedSenders && { allowedSenders: new Set(o.allowedSenders) }),
      ...(o.log && { log: o.log }),
      ...(o.clock && { clock: o.clock }),
    },
  })
}
