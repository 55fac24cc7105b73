// A bulk dry run's count with mayHaveBeenDelivered, and a retry's by lastErrorCode, over random row states: the rows the definition names, computed plainly from each row's state.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { cancellable, countCancellable } from '../../src/outbox/bulk-cancel.ts'
import { countRequeueable } from '../../src/outbox/bulk-requeue.ts'
import { lowestFinishedWithCode } from '../../src/outbox/candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { requeueable } from '../../src/outbox/requeue.ts'
import { useTestDb } from '../support/db.ts'
import {
  mayHaveBeenDelivered,
  type RowState,
  rowsInRandomStates,
} from '../support/delivered-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()

/** The filters compared: by status, by code (its own read, countFinishedWithCode), by tenant, none. */
const FILTERS: OutboxFilter[] = [
  {},
  { status: ['failed'] },
  { status: ['failed', 'cancelled'] },
  { status: ['pending', 'sending'] },
  { lastErrorCode: 'throttled' },
  { lastErrorCode: 'ambiguous_send', status: ['failed'] },
  { tenant: 'a' },
]

/** The ids a filter without mayHaveBeenDelivered matches among an action's rows (`extra`), as the product reads them. */
async function idsWithout(filter: OutboxFilter, extra: (eb: EB) => Expression<SqlBool>) {
  const rows = await t.db
    .selectFrom('mailer.email_outbox')
    .select('id')
    .where((eb) => eb.and([matchOutbox(eb, filter, null), extra(eb)]))
    .execute()
  return new Set(rows.map((row) => String(row.id)))
}
type EB = ExpressionBuilder<Database, 'mailer.email_outbox'>

describe('a dry run counting with mayHaveBeenDelivered', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    test(`counts the rows the definition names, round ${seed} of random states`, async () => {
      const states = await rowsInRandomStates(t, seed, 80)
      const byId = new Map(states.map((s) => [s.id, s]))
      for (const filter of FILTERS) {
        const retryIds = await idsWithout(filter, requeueable)
        const cancelIds = await idsWithout(filter, cancellable)
        for (const delivered of [false, true]) {
          const f = { ...filter, mayHaveBeenDelivered: delivered }
          const plain = (ids: Set<string>) =>
            [...ids].filter((id) => mayHaveBeenDelivered(byId.get(id)!) === delivered).length
          expect({
            filter: f,
            retry: await countRequeueable(t.db, f, null),
            cancel: await countCancellable(t.db, f, null),
          }).toEqual({ filter: f, retry: plain(retryIds), cancel: plain(cancelIds) })
        }
      }
    })
  }
})

/** The filters by lastErrorCode compared: the code's rows first (countFinishedWithCode, lowestFinishedWithCode). */
const CODE_FILTERS: OutboxFilter[] = [
  { lastErrorCode: 'throttled' },
  { lastErrorCode: 'ambiguous_send' },
  { lastErrorCode: 'graph_rejected', status: ['cancelled'] },
  { lastErrorCode: 'none_such' },
]

/** Whether a retry takes the row `s` with `f` (status, code, mayHaveBeenDelivered), read plainly: none of these rows expires. */
const retriedPlainly = (f: OutboxFilter, s: RowState) =>
  (s.status === 'failed' || s.status === 'cancelled') &&
  (f.status?.includes(s.status) ?? true) &&
  s.code === f.lastErrorCode &&
  (f.mayHaveBeenDelivered === undefined || mayHaveBeenDelivered(s) === f.mayHaveBeenDelivered)

describe('a retry by lastErrorCode', () => {
  for (const seed of [1, 2, 3]) {
    test(`counts and takes first the rows the definition names, round ${seed} of random states`, async () => {
      const states = await rowsInRandomStates(t, seed, 80)
      const byId = (a: string, b: string) => Number(BigInt(a) - BigInt(b))
      for (const filter of CODE_FILTERS) {
        for (const delivered of [undefined, false, true]) {
          const f = { ...filter, mayHaveBeenDelivered: delivered }
          const want = states.filter((s) => retriedPlainly(f, s)).map((s) => s.id)
          want.sort(byId)
          const matching = (eb: EB) => eb.and([matchOutbox(eb, f, null), requeueable(eb)])
          const statuses = (['failed', 'cancelled'] as const).filter(
            (s) => f.status?.includes(s) ?? true,
          )
          expect({
            filter: f,
            count: await countRequeueable(t.db, f, null),
            firstTwo: await lowestFinishedWithCode(t.db, f.lastErrorCode!, statuses, matching, 2),
          }).toEqual({ filter: f, count: want.length, firstTwo: want.slice(0, 2) })
        }
      }
    })
  }
})
