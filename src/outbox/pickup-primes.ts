// Pickup primes: the statements a new session's first pickup runs, run once per session for no row.
import type { PostgresDialectConfig } from 'kysely'
import type { Queryable } from '../db/queryable.ts'
import { singleStatementDb } from '../db/single-statement-db.ts'
import { primeNotifiedClaim } from './claim.ts'
import { slotTakeStatement } from './send-slots.ts'
import { primeLastCheck } from './start-send.ts'

/** What a send runs between its claim and its start, by transport (the send gate's kind). */
export interface PickupPath {
  /**
   * The claim is guarded by MAIL_FROM's pause (claim.ts mailFromGuard, sql/0062): a Graph worker
   * with MAIL_FROM runs outbox_claim_notified_unowed, not outbox_claim_notified.
   */
  guardedClaim: boolean
  /** A shared send slot is taken (the Postgres send gate: Graph). */
  slotTake: boolean
  /**
   * The last check before the send: with the mailbox's pause read in it (Graph without pacing),
   * plain (Graph with pacing), or none (an open gate: the claim records the start itself).
   */
  lastCheck: 'with-pause' | 'plain' | 'none'
}

/**
 * Runs, on `session`, each statement of a pickup for no row, in the pickup's order: a new backend
 * compiles functions, plans statements and loads catalog entries at their first call, which the
 * first row after a (re)connect otherwise waited for, statement by statement (bench/cold-pickup.ts:
 * the Graph binary's claim → start 6.3 ms cold, 4.9 primed, 4.1 warm). None of them claims, locks a
 * row or writes (no WAL, no transaction id): a table lock of the kind an application's INSERT takes
 * is all an application could meet. The settlement, which follows the send and which no pickup
 * waits for, is left cold.
 */
export function pickupPrimer(path: PickupPath): (session: Queryable) => Promise<void> {
  return async (session) => {
    // Each statement is sent once the one before answered: a client runs one query at a time, and
    // pg queues (pg@9 refuses) a query handed to it meanwhile. None runs inside a user's statements:
    // a pooled connection is lent only once its prime ended (PrimedPool), the LISTEN session only
    // after its owner's turn.
    await primeNotifiedClaim(session, path.guardedClaim)
    if (path.slotTake) await primeSlotTake(session)
    if (path.lastCheck !== 'none') await primeLastCheck(session, path.lastCheck === 'with-pause')
  }
}

/**
 * The slot take for no slot (want 0 of max 0) on `session`: a new backend loads send_slots' catalog
 * entries and the functions the take calls at its first take (sent unnamed, it has no plan to
 * keep). It takes, locks and writes nothing: with max 0 no slot row is missing, so takeSlots
 * creates none.
 */
async function primeSlotTake(session: Queryable): Promise<void> {
  const client = { query: session.query.bind(session), release: () => {} }
  const pool = { connect: async () => client, end: async () => {} }
  const db = singleStatementDb(pool as unknown as PostgresDialectConfig['pool'], (text, values) =>
    session.query(text, values),
  )
  // Compiled here and sent at once (a query through db would be sent a few ticks later).
  const take = slotTakeStatement({ want: 0, max: 0, holder: '', ttlMs: 0 }).compile(db)
  await session.query(take.sql, [...take.parameters])
}
