// A bulk dry run's count with mayHaveBeenDelivered, over random row states: the rows the definition names, computed plainly from each row's state.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { cancellable, countCancellable } from '../../src/outbox/bulk-cancel.ts'
import { countRequeueable } from '../../src/outbox/bulk-requeue.ts'
import { matchOutbox, type OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { requeueable } from '../../src/outbox/requeue.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()

const STATUSES = ['pending', 'sending', 'sent', 'failed', 'cancelled'] as const
const CODES = [null, 'throttled', 'ambiguous_send', 'graph_rejected'] as const
const HISTORY_CODES = [null, 'throttled', 'ambiguous_send', 'graph_rejected'] as const

interface RowState {
  id: string
  status: (typeof STATUSES)[number]
  tenant: 'a' | 'b'
  marked: boolean
  code: (typeof CODES)[number]
  history: (typeof HISTORY_CODES)[number][]
}

/** A small seeded generator (mulberry32): a failing round is run again as it was. */
function random(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!

/** The definition (delivery-possible.ts), read plainly off a row's state. */
const mayHaveBeenDelivered = (s: RowState) =>
  s.status === 'sent' || s.marked || (s.code !== null && s.history.includes('ambiguous_send'))

/** `n` rows in random states, each with 0–3 history entries of random codes. */
async function rowsInRandomStates(seed: number, n: number): Promise<RowState[]> {
  const r = random(seed)
  await t.reset()
  const { rows } = await t.pool.query(
    `select mailer.enqueue_email('{"to":"ada@example.com","subject":"s","text":"t"}'::jsonb,
                                 '{}'::jsonb)::text as id
       from generate_series(1, $1::int)`,
    [n],
  )
  const states: RowState[] = rows.map((row: { id: string }) => ({
    id: row.id,
    status: pick(r, STATUSES),
    tenant: pick(r, ['a', 'b'] as const),
    marked: r() < 0.3,
    code: pick(r, CODES),
    history: Array.from({ length: Math.floor(r() * 4) }, () => pick(r, HISTORY_CODES)),
  }))
  for (const s of states) {
    await t.pool.query(
      `update mailer.email_outbox
          set status = $2, tenant = $3, last_error_code = $4, attempts = 1,
              send_started_at = case when $5 then now() - interval '1 hour' end,
              sent_at = case when $2 = 'sent' then now() end,
              lease_token = case when $2 = 'sending' then gen_random_uuid() end,
              lease_expires_at = case when $2 = 'sending' then now() + interval '1 minute' end,
              cancel_requested_at = case when $2 in ('pending', 'sending') and $6 then now() end
        where id = $1`,
      [s.id, s.status, s.tenant, s.code, s.marked, r() < 0.3],
    )
    for (const [i, code] of s.history.entries())
      await t.pool.query(
        `insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, kind)
         values ($1, $2, 'failed', $3, 'attempt')`,
        [s.id, i + 1, code],
      )
  }
  return states
}

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
      const states = await rowsInRandomStates(seed, 80)
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
