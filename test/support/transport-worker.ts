// A test worker wired as serve wires Graph: createTransport's sender, shared gate and lookup against a fake Graph, no lookups asked for.
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import type { DrainerDeps } from '../../src/outbox/drainer-deps.ts'
import { createTransport, type Transport } from '../../src/transport-wiring.ts'
import type { TestDb } from './db.ts'
import { createTestEngine, type TestEngine } from './engine.ts'
import { type FakeGraph, graphEnvFor } from './fake-graph.ts'

/** The Graph transport of a worker sending from `mailFrom`, at MAILBOX_RATE_PER_MINUTE `rate`. */
export function graphTransport(fake: FakeGraph, mailFrom: string, rate = '0'): Transport {
  const config = loadConfig(
    {
      ...graphEnvFor(fake),
      MAIL_FROM: mailFrom,
      GRAPH_CLIENT_SECRET: 'right',
      MAILBOX_RATE_PER_MINUTE: rate,
    },
    { requireDatabase: false },
  )
  return createTransport(
    config,
    createLogger('error', () => {}),
  )
}

/** Started, and pushed on `engines` for the caller's afterEach to stop. */
export async function startTransportWorker(
  t: TestDb,
  engines: TestEngine[],
  tr: Transport,
  o: {
    workerId: string
    mailFrom: string
    sendTimeoutMs: number
    /** The worker's statements on this handle (a proxy's) rather than the test database's. */
    db?: DrainerDeps['db']
    clock?: DrainerDeps['clock']
  },
): Promise<TestEngine> {
  const engine = createTestEngine(t, {
    deps: {
      log: createLogger('error', () => {}),
      sender: tr.senderFor('test'),
      gate: tr.gateFor(t, o.workerId),
      lookup: tr.lookupFor('test'),
      sendBlockedForMs: tr.blockedForMs,
      sendTimeoutMs: o.sendTimeoutMs,
      mailFrom: o.mailFrom,
      ...(o.db && { db: o.db }),
      ...(o.clock && { clock: o.clock }),
    },
    workerId: o.workerId,
  })
  await engine.start()
  engines.push(engine)
  return engine
}
