// A list filtered by mayHaveBeenDelivered, walked page by page over random row states: every row the definition names, once, in the order asked.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { useTestDb } from '../support/db.ts'
import {
  mayHaveBeenDelivered,
  type RowState,
  rowsInRandomStates,
} from '../support/delivered-states.ts'
import { allPages } from '../support/list-all-pages.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(120_000)

const t = useTestDb()

/**
 * The filters walked: a status through its index (a failed row's run, failed-walk.ts), several,
 * with pending (pending-near.ts), with sent or none (a span of the primary key, span-page.ts),
 * by code and by tenant.
 */
const FILTERS: OutboxFilter[] = [
  { status: ['failed'] },
  { status: ['cancelled'] },
  { status: ['failed', 'cancelled'] },
  { status: ['failed', 'pending'] },
  { status: ['sent', 'failed'] },
  { status: ['failed'], lastErrorCode: 'throttled' },
  { lastErrorCode: 'throttled' },
  { tenant: 'a' },
  {},
]

/** Whether the row `s` matches `f` (status, code, tenant, mayHaveBeenDelivered), read plainly. */
const matchesPlainly = (f: OutboxFilter, s: RowState) =>
  (f.status?.includes(s.status) ?? true) &&
  (f.lastErrorCode === undefined || s.code === f.lastErrorCode) &&
  (f.tenant === undefined || s.tenant === f.tenant) &&
  mayHaveBeenDelivered(s) === f.mayHaveBeenDelivered

describe('a list filtered by mayHaveBeenDelivered', () => {
  for (const seed of [1, 2, 3]) {
    test(`pages through the rows the definition names, round ${seed} of random states`, async () => {
      const states = await rowsInRandomStates(t, seed, 80)
      for (const filter of FILTERS) {
        for (const delivered of [false, true]) {
          const f = { ...filter, mayHaveBeenDelivered: delivered }
          const want = states.filter((s) => matchesPlainly(f, s)).map((s) => s.id)
          want.sort((a, b) => Number(BigInt(b) - BigInt(a)))
          // Pages of 3 and spans of 20 ids: a failed row's run (60 rows) and spans end within the rows.
          for (const order of ['newest', 'oldest'] as const) {
            expect({
              filter: f,
              order,
              ids: await allPages(t.db, f, 3, null, { order, spanRows: 20 }),
            }).toEqual({ filter: f, order, ids: order === 'newest' ? want : [...want].reverse() })
          }
        }
      }
    })
  }
})
