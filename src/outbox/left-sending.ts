// The rows a bulk call passed while they were being sent, which neither it nor the rest of its loop acts on: named in its answer.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { inSpan, type PassedSending } from './bulk-loop-span.ts'
import type { IdSpan, Where } from './candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'

/** What a bulk action counts as left of a row it passed (bulk-cancel.ts, bulk-requeue.ts say theirs). */
export interface LeftRows {
  /** Of the rows in `sending` (and the filter's but for its status): those it counts in flight. */
  inFlight: Where
  /**
   * Of a row read in flight before the batch, at the end of the call: still in flight, or what the
   * action would take now (a cancel's: pending again; a retry's: failed again); not one settled
   * otherwise (sent; a cancel's failed or cancelled), which a follow-up by its id would refuse.
   */
  stillLeft: Where
}

/**
 * For a loop step (loopStep's passedSending): `read`, before its batch, the ids of every row of a
 * span in `sending` that matches `filter` but for its status and whether a send may have delivered
 * it (a settle changes both) and `left.inFlight`, lowest first, through email_outbox_sending_idx (id) where status = 'sending'
 * (0005): the rows in flight within the range (as many as the workers hold, whatever `limit`),
 * never the rows it passed otherwise. `left`, after the batch, in one statement: those read so again
 * (rows in flight now), and of the ids read before within the range passed (by the primary key)
 * those `left.stillLeft` keeps, less the rows the batch acted on, lowest first, at most `limit` + 1:
 * the one past `limit` tells there are more, as every row in flight at the first read was read.
 */
export const sendingPassed = (
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  left: LeftRows,
  limit: number,
): PassedSending => {
  // A row's send in flight marks it (delivery-possible.ts) as its settlement will not, should it
  // fail for sure: whether a send may have delivered it is read at the end, as its status is.
  const unfiltered = { ...filter, status: undefined, mayHaveBeenDelivered: undefined }
  const inFlight = (span: IdSpan, acted: readonly string[], most: number | null) =>
    db
      .selectFrom('mailer.email_outbox')
      .select('id')
      .where((eb) =>
        eb.and([
          eb('status', '=', 'sending'),
          inSpan(span)(eb),
          matchOutbox(eb, unfiltered, scopeTenant),
          left.inFlight(eb),
          sql<boolean>`id <> all(${[...acted]}::bigint[])`,
        ]),
      )
      .orderBy('id')
      .$if(most !== null, (q) => q.limit(most!))
  return {
    limit,
    read: async (span) => (await inFlight(span, [], null).execute()).map((r) => String(r.id)),
    left: async (passed, before, acted) => {
      const stillLeft = db
        .selectFrom('mailer.email_outbox')
        .select('id')
        .where((eb) =>
          eb.and([
            sql<boolean>`id = any(${[...before]}::bigint[])`,
            inSpan(passed)(eb),
            matchOutbox(eb, unfiltered, scopeTenant),
            left.stillLeft(eb),
            sql<boolean>`id <> all(${[...acted]}::bigint[])`,
          ]),
        )
      const { rows } = await sql<{ id: string }>`
        select id from (${inFlight(passed, acted, limit + 1)}) as in_flight
        union
        select id from (${stillLeft}) as still_left
         order by id
         limit ${limit + 1}`.execute(db)
      return rows.map((r) => String(r.id))
    },
  }
}
