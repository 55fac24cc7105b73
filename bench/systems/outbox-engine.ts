// outbox-mailer's engine in process (drainer + listener, production defaults) with an instant sender.
import { systemClock } from '../../src/clock.ts'
import { loadConfig } from '../../src/config.ts'
import { migrate } from '../../src/db/migrate.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import type { Queryable } from '../../src/db/queryable.ts'
import { silentLogger } from '../../src/log.ts'
import { createDrainer, type Drainer } from '../../src/outbox/drainer.ts'
import type { DrainerDeps } from '../../src/outbox/drainer-deps.ts'
import { createListener, type Listener } from '../../src/outbox/listener.ts'
import { pickupPrimer } from '../../src/outbox/pickup-primes.ts'
import { openGate } from '../../src/outbox/send-gate.ts'
import type { Sender } from '../../src/outbox/sender.ts'
import { createSlots } from '../../src/outbox/slots.ts'
import { workerIdentity } from '../../src/outbox/worker-identity.ts'
import { createDiscardSender } from '../../src/transport/discard-sender.ts'
import { idleCollection } from './idle-collection.ts'
import type { Probe } from './probe.ts'
import type { BenchSystem, StartOptions } from './system.ts'

// The worker named as serve names it, on a Fly machine (FLY_MACHINE_ID as host, 14 hex): the claimed
// row version and each history row carry a deployment's id. Its pid always 5 digits (this host's
// are 4 or 5), so that the id's length, which WAL per row follows, is the same run to run.
// The suite's `bench-<pid>` (11 characters) flattered WAL per row by about 58 B (round 35).
export const benchWorker = () =>
  workerIdentity('e286de4f711986', 10_000 + (process.pid % 90_000), 'bench')

export const OUTBOX_MESSAGE = `jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')), 'subject', 's', 'text', 't')`

/** The outbox's insert/reset/progress, shared by the in-process engine and the compiled binary. */
export function outboxQueue(probe: Probe) {
  return {
    async reset() {
      await probe.query('truncate mailer.email_attempts, mailer.email_outbox, mailer.workers')
      await probe.query('vacuum analyze mailer.email_outbox, mailer.email_attempts')
    },
    insertBulk: (n: number) =>
      probe.insertAndMark([
        {
          text: `insert into mailer.email_outbox (message) select ${OUTBOX_MESSAGE} from generate_series(1, $1)`,
          values: [n],
        },
      ]),
    async insertOne(key: number) {
      await probe.query(
        `insert into mailer.email_outbox (message, correlation_id) values (${OUTBOX_MESSAGE}, $1::text)`,
        [String(key)],
      )
    },
    async remaining() {
      // Each count through its partial index (email_outbox_claim_idx, email_outbox_sending_idx):
      // `status in (…)` scans the whole table, which bench/aged.ts keeps large.
      const r = await probe.query<{ n: string }>(
        `select (select count(*) from mailer.email_outbox where status = 'pending')
              + (select count(*) from mailer.email_outbox where status = 'sending') as n`,
      )
      return Number(r[0]!.n)
    },
  }
}

/**
 * BENCH_PRIME=rolled-back (round 36, bench/first-pickup-trace.ts; not the product's): the listener's
 * prime claims a row of its own, inserted in a transaction it rolls back, instead of the notified
 * claim for no row: every path of the first real claim run once on the session (its update, index
 * entries, result and first WAL), to tell that first run's cost from the rest of row 1's.
 */
async function primeRolledBack(session: Queryable): Promise<void> {
  await session.query('begin')
  try {
    const r = await session.query<{ id: string }>(
      `insert into mailer.email_outbox (message) values (${OUTBOX_MESSAGE}) returning id`,
    )
    // The text of src/outbox/claim.ts's CLAIM_NOTIFIED exactly: one prepared statement per name.
    await session.query(
      `
  /* prepared outbox_claim_notified */
  select mailer.claim_notified($1::bigint, $2::text, $3::uuid, $4::float8, $5::boolean, $6::int)::text as claim`,
      [r.rows[0]!.id, 'prime', crypto.randomUUID(), 1, true, 1],
    )
  } finally {
    await session.query('rollback')
  }
}

/**
 * `claim`: the drainer's claim statement in place of claimBatch (bench/drain-timeline.ts wraps it
 * to mark each claim's asking and answer); absent, the product's.
 */
export function outboxEngineSystem(
  database: string,
  url: string,
  probe: Probe,
  claim?: DrainerDeps['claim'],
): BenchSystem {
  let handle: DbHandle | null = null
  let drainer: Drainer | null = null
  let listener: Listener | null = null
  let stopIdle = () => {}
  return {
    name: 'outbox-mailer engine',
    database,
    ...outboxQueue(probe),
    async prepare() {
      await migrate({ url, log: silentLogger })
    },
    async start(o: StartOptions) {
      const config = loadConfig({
        DATABASE_URL: url,
        MAIL_TRANSPORT: 'discard',
        MAIL_FROM: 'outbox@example.com',
        API_JWT_SECRET: 'x'.repeat(32),
        WORKER_CONCURRENCY: String(o.concurrency),
      })
      const discard = createDiscardSender()
      // BENCH_IDLE_GC_MS: round 34's collection once idle (off by default; not the product's).
      const idle = idleCollection()
      stopIdle = idle.stop
      // Send start is when the engine calls the transport; the key travels as the correlation id.
      const sender: Sender = {
        name: 'bench',
        send: (mail, signal) => {
          o.onStart?.(Number(mail.correlationId ?? 0))
          idle.sent()
          return discard.send(mail, signal)
        },
      }
      handle = openDb({
        name: 'bench',
        url,
        log: silentLogger,
        maxConnections: config.worker.concurrency + 4,
        // As `serve` opens it: idle, the worker's statements ride the LISTEN session; a pool
        // connection, taken while the session is busy, primed for the instant sender's pickup.
        shareListenSession: true,
        prime: pickupPrimer({ slotTake: false, lastCheck: 'none', guardedClaim: false }),
      })
      // The listener's wakes reach the drainer made below it (none comes before start()).
      const l = createListener({
        db: 'bench',
        url,
        log: silentLogger,
        clock: systemClock,
        wake: (_reason, rowId) => d.wake(rowId),
        owedRowsHeld: () => d.owedRowsHeld(),
        workerStopped: () => d.workerStopped(),
        checkIntervalMs: config.worker.listenCheckSeconds * 1000,
        mode: config.worker.listenMode,
        shared: handle.listenSession,
        ...(process.env.BENCH_PRIME === 'rolled-back' ? { prime: primeRolledBack } : {}),
      })
      const d = createDrainer({
        dbName: 'bench',
        db: handle.statements.db,
        ...(claim && { claim }),
        sender,
        gate: openGate,
        slots: createSlots(config.worker.concurrency),
        clock: systemClock,
        log: silentLogger,
        worker: benchWorker(),
        config: config.worker,
        mailFrom: config.mailFrom,
        lookup: null,
        ambiguousPolicy: 'resend',
        listener: l,
      })
      listener = l
      drainer = d
      listener.start()
      drainer.start()
    },
    async stop() {
      await listener?.stop()
      await drainer?.stop(5000)
      await handle?.close()
      stopIdle()
      listener = drainer = handle = null
    },
  }
}
