// Builds one database's drainer + listener for tests, with test-friendly defaults and recorded events.
import { systemClock } from '../../src/clock.ts'
import type { WorkerConfig } from '../../src/config.ts'
import type { DbHandle } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { createDrainer, type Drainer } from '../../src/outbox/drainer.ts'
import type { DrainerDeps } from '../../src/outbox/drainer-deps.ts'
import { createListener, type Listener } from '../../src/outbox/listener.ts'
import type { ListenerDeps } from '../../src/outbox/listener-deps.ts'
import { openGate } from '../../src/outbox/send-gate.ts'
import { createSlots } from '../../src/outbox/slots.ts'
import type { TestDb } from './db.ts'
import { createEventLog, type EventLog, pollUntil } from './events.ts'
import { createFakeSender, type FakeSender } from './fake-sender.ts'

export const testWorkerConfig: WorkerConfig = {
  concurrency: 10,
  leaseSeconds: 30,
  heartbeatSeconds: 10,
  maxAttempts: 3,
  retryBaseSeconds: 10,
  retryMaxSeconds: 60,
  // Long on purpose: a test that passes never relied on the backstop poll.
  pollIntervalSeconds: 600,
  listenCheckSeconds: 600,
  listenMode: 'auto',
  shutdownGraceSeconds: 5,
  throttleDeadlineSeconds: 86400,
}

export interface TestEngine {
  drainer: Drainer
  listener: Listener
  sender: FakeSender
  events: EventLog
  start(): Promise<void>
  stop(graceMs?: number): Promise<void>
}

export function createTestEngine(
  t: TestDb,
  o: {
    config?: Partial<WorkerConfig>
    workerId?: string
    deps?: Partial<DrainerDeps>
    /** Run as `serve` does: the worker's statements on this handle's route, sharing the LISTEN session. */
    handle?: DbHandle
    /** The listener's own URL (LISTEN_DATABASE_URL), for a handle that does not share its session. */
    listenUrl?: string
    /** What a shared session runs when it starts listening (the listener's `prime`). */
    prime?: ListenerDeps['prime']
  } = {},
): TestEngine {
  const config = { ...testWorkerConfig, ...o.config }
  const sender = (o.deps?.sender as FakeSender | undefined) ?? createFakeSender()
  const events = createEventLog()
  // The listener's wakes reach the drainer made below it (none comes before start()).
  const listener = createListener({
    db: 'test',
    url: o.listenUrl ?? t.url,
    log: silentLogger,
    clock: systemClock,
    wake: (_reason, rowId) => drainer.wake(rowId),
    owedRowsHeld: () => drainer.owedRowsHeld(),
    workerStopped: () => drainer.workerStopped(),
    onEvent: events.handler,
    checkIntervalMs: config.listenCheckSeconds * 1000,
    checkTimeoutMs: 1000,
    maxBackoffMs: 500,
    mode: config.listenMode,
    shared: (o.handle ?? t).listenSession,
    connectionsRetired: (o.handle ?? t).connectionsRetired,
    ...(o.prime && { prime: o.prime }),
  })
  const drainer = createDrainer({
    dbName: 'test',
    db: (o.handle ?? t).statements.db,
    poolDb: (o.handle ?? t).db,
    sender,
    gate: openGate,
    slots: createSlots(config.concurrency),
    clock: systemClock,
    log: silentLogger,
    worker: { id: o.workerId ?? 'test-worker', host: 'test', pid: process.pid, version: 'test' },
    config,
    mailFrom: 'sender@example.com',
    lookup: null,
    ambiguousPolicy: 'resend',
    onEvent: events.handler,
    listener,
    ...o.deps,
  })
  return {
    drainer,
    listener,
    sender,
    events,
    async start() {
      listener.start()
      drainer.start()
      if (config.listenMode === 'auto') {
        await events.waitFor((e) => e.type === 'listener' && e.state === 'listening')
      }
    },
    async stop(graceMs = 2000) {
      await listener.stop()
      await drainer.stop(graceMs)
    },
  }
}

export async function enqueue(
  t: TestDb,
  message: Record<string, unknown> = { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi there' },
  options: Record<string, unknown> = {},
): Promise<string> {
  const r = await t.pool.query<{ id: string }>(
    'select mailer.enqueue_email($1::jsonb, $2::jsonb) as id',
    [JSON.stringify(message), JSON.stringify(options)],
  )
  return r.rows[0]!.id
}

export async function rowOf(t: TestDb, id: string) {
  const r = await t.pool.query('select * from mailer.email_outbox where id = $1', [id])
  return r.rows[0]
}

/** Until `n` rows are in `status` (polled, within pollUntil's bound). */
export async function allIn(t: TestDb, status: string, n: number) {
  await pollUntil(async () => {
    const r = await t.pool.query(
      'select count(*)::int as n from mailer.email_outbox where status = $1',
      [status],
    )
    return r.rows[0].n === n ? true : undefined
  })
}

/** A row's attempt history, oldest first: `columns` of each attempt. */
export async function attemptsOf(t: TestDb, id: string, columns: string) {
  const r = await t.pool.query(
    `select ${columns} from mailer.email_attempts where outbox_id = $1 order by id`,
    [id],
  )
  return r.rows
}
