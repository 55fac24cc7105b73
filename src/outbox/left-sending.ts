// The rows a bulk call passed while they were being sent, which neither it nor the rest of its loop acts on: named in its answer.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import { inSpan, type PassedSending } from './bulk-loop-span.ts'
import type { IdSpan, Where } from './candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'

/**
 * For a loop step (loopStep's passedSending, read before its batch and after): the ids of up to
 * `limit` rows of a span that are being sent (status `sending`) and match `filter` but for its
 * status (a settle brings them back to another) and `also`, lowest first: rows its loop leaves
 * behind its position, should their send fail and bring them back to what the filter takes. Through
 * email_outbox_sending_idx (id) where status = 'sending' (0005): the rows in flight within the
 * range, never the rows it passed otherwise.
 */
export const sendingPassed = (
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  also: Where,
  limit: number,
): PassedSending => ({
  limit,
  read: async (passed: IdSpan): Promise<string[]> => {
    const rows = await db
      .selectFrom('mailer.email_outbox')
      .select('id')
      .where((eb) =>
        eb.and([
          eb('status', '=', 'sending'),
          inSpan(passed)(eb),
          matchOutbox(eb, { ...filter, status: undefined }, scopeTenant),
          also(eb),
        ]),
      )
      .orderBy('id')
      .limit(limit)
      .execute()
    return rows.map((r) => String(r.id))
  },
})
