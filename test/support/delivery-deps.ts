// What deliverBatch needs, as the tests that call it without a drainer build it: the engine's own pieces on the test database, each test naming only what it varies.
import type { Kysely } from 'kysely'
import { type Clock, systemClock } from '../../src/clock.ts'
import type { Database } from '../../src/db/schema.ts'
import { type Logger, silentLogger } from '../../src/log.ts'
import type { DeliveryDeps } from '../../src/outbox/deliver.ts'
import { openGate } from '../../src/outbox/send-gate.ts'
import type { SettleQueue } from '../../src/outbox/settle-queue.ts'
import { createSettlements } from '../../src/outbox/settlements.ts'
import { createSlots } from '../../src/outbox/slots.ts'
import { createStartQueue } from '../../src/outbox/start-queue.ts'
import { startSends } from '../../src/outbox/start-send.ts'

/** Worker w1's settlements: a 30 s lease unless told, 3 attempts, a day's throttle deadline. */
export function testSettlements(
  db: Kysely<Database>,
  o: { leaseSeconds?: number; clock?: Clock; log?: Logger } = {},
): SettleQueue {
  return createSettlements({
    db,
    workerId: 'w1',
    config: { leaseSeconds: o.leaseSeconds ?? 30, maxAttempts: 3, throttleDeadlineSeconds: 86400 },
    clock: o.clock ?? systemClock,
    log: o.log ?? silentLogger,
  })
}

/**
 * Delivery on `db` (settlements and last checks there, templates too unless `over.db` names
 * another): one slot, the last check through a start queue, MAIL_FROM sender@example.com, no
 * lookup, a resend by policy, never stopping, the system clock; `over` replaces any of it.
 */
export function deliveryDeps(
  db: Kysely<Database>,
  over: Partial<DeliveryDeps> & Pick<DeliveryDeps, 'sender'>,
): DeliveryDeps {
  return {
    dbName: 'test',
    db,
    gate: openGate,
    slots: createSlots(1),
    settle: over.settle ?? testSettlements(db),
    start: over.start ?? createStartQueue((l) => startSends(db, l)),
    clock: systemClock,
    log: silentLogger,
    mailFrom: 'sender@example.com',
    backoff: { baseMs: 1_000, maxMs: 10_000 },
    lookup: null,
    ambiguousPolicy: 'resend',
    stopping: new AbortController().signal,
    abort: new AbortController().signal,
    done: () => {},
    ...over,
  }
}
