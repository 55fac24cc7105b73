// A bulk retry and its dry run by lastErrorCode: the same rows as one condition gives, reading the heap of that code's failed and cancelled rows only.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import pg from 'pg'
import type { Database } from '../../src/db/schema.ts'
import type { BulkLoopSpan } from '../../src/outbox/bulk-loop-span.ts'
import {
  countRequeueable,
  requeueLoopStep,
  requeueMatching,
} from '../../src/outbox/bulk-requeue.ts'
import { countMatching, lowestMatching } from '../../src/outbox/candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { requeueable, withinSenders } from '../../src/outbox/requeue.ts'
import { vacuumAllVisible } from '../support/all-visible-vacuum.ts'
import { useTestDb } from '../support/db.ts'
import { untilLockWaits } from '../support/lock-waits.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates, updateFlushed } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const CODES = ['graph_rejected', 'ErrorInvalidRecipients', 'expired', 'MailboxNotEnabledForRESTAPI']
// A rare code: ten failed rows spread over the table (ids 1,000 … 10,000), three of them expired.
const RARE = 'ErrorQuotaExceeded'

const t = useTestDb()
beforeAll(async () => {
  // 10,000 rows of two tenants: one in 10 failed (250 a code, ten of graph_rejected's RARE instead),
  // one in 97 of the others cancelled (a fifth of them after an error), the rest sent; among the
  // failed ones some past their expiresAt (not requeueable) and some not yet.
  await insertRowsInStates(
    t.pool,
    `select case when g % 2 = 0 then 'a' else 'b' end as tenant,
            case when g % 10 = 0 then 'failed' when g % 97 = 0 then 'cancelled' else 'sent' end as status,
            null::text as correlation_id, g as k
       from generate_series(1, 10000) g`,
    's.k',
  )
  await updateFlushed(
    t.pool,
    `update mailer.email_outbox
        set last_error_code = case when status = 'failed' and id % 1000 = 0 then '${RARE}'
                                   when status = 'failed' then (array['${CODES.join("','")}'])[1 + (id / 10) % 4]
                                   when id % 5 = 0 then 'graph_rejected' end,
            expires_at = case when id % 30 = 0 then now() - interval '1 hour'
                              when id % 70 = 0 then now() + interval '1 day' end,
            -- A sender of its own on two rows in three (one inside the senders compared below),
            -- MAIL_FROM's on the third: a count inside or outside them tells them apart.
            message = message || jsonb_build_object('from', case when id % 3 = 0 then 'orders@example.com'
                                                                 when id % 3 = 1 then 'Desk <desk@example.com>' end)
      where status in ('failed', 'cancelled')`,
  )
  await vacuumAllVisible(t.pool)
})

/** Filters by code alone and with each narrower condition, a code none holds, and none. */
const FILTERS: OutboxFilter[] = [
  ...[...CODES, RARE].map((lastErrorCode) => ({ lastErrorCode })),
  { lastErrorCode: 'graph_rejected', status: ['cancelled'] },
  { lastErrorCode: 'graph_rejected', status: ['failed'] },
  { lastErrorCode: 'expired', status: ['failed', 'cancelled'], tenant: 'a' },
  { lastErrorCode: 'expired', ids: ['30', '40', '60', '70', '9999'] },
  { lastErrorCode: RARE, createdFrom: '2000-01-01T00:00:00Z' },
  { lastErrorCode: 'none_such' },
  { lastErrorCode: 'expired', status: [] },
  { status: ['failed'] },
]

/** The count as one condition: the statement a dry run ran before countFinishedWithCode (ids within `span`). */
const oneCondition = (
  f: OutboxFilter,
  scope: string | null,
  senders: ReadonlySet<string> | null,
  inside: boolean,
  span: BulkLoopSpan | null = null,
) =>
  countMatching(t.db, (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([
      matchOutbox(eb, f, scope),
      requeueable(eb),
      inside ? withinSenders(senders)(eb) : eb.not(withinSenders(senders)(eb)),
      ...(span ? [eb('id', '>', span.after!), eb('id', '<=', span.upTo)] : []),
    ]),
  )

test('a retry dry run counts what one condition counts, by code, status, tenant and sender', async () => {
  const senders = new Set(['orders@example.com'])
  const got: unknown[] = []
  const want: unknown[] = []
  for (const f of FILTERS) {
    for (const scope of [null, 'b']) {
      for (const [s, inside] of [
        [null, true],
        [senders, true],
        [senders, false],
      ] as const) {
        got.push({ f, scope, inside, n: await countRequeueable(t.db, f, scope, s, inside) })
        want.push({ f, scope, inside, n: await oneCondition(f, scope, s, inside) })
        // The rest of a loop (a dry run given its cursor): the ids past its position up to its bound.
        const span = { after: '3000', upTo: '8000' }
        got.push({
          f,
          scope,
          inside,
          span,
          n: await countRequeueable(t.db, f, scope, s, inside, span),
        })
        want.push({ f, scope, inside, span, n: await oneCondition(f, scope, s, inside, span) })
      }
    }
  }
  expect(got).toEqual(want)
  // Not all nothing: the expired ones left out, the others counted.
  expect(await countRequeueable(t.db, { lastErrorCode: 'expired' }, null)).toBe(
    Number(
      (
        await t.pool.query<{ n: string }>(
          `select count(*) as n from mailer.email_outbox
            where status = 'failed' and last_error_code = 'expired'
              and (expires_at is null or expires_at > now())`,
        )
      ).rows[0]!.n,
    ),
  )
})

test("a retry dry run by lastErrorCode reads the heap of that code's rows, not of every failed one", async () => {
  const r = await outboxReadsOf(t.db, (trx) =>
    countRequeueable(trx, { lastErrorCode: 'expired' }, null),
  )
  // 250 failed rows carry the code (1,000 failed and 93 cancelled rows in all); one condition
  // fetched every failed and cancelled row's heap to check it.
  expect(r.seqScans).toBe(0)
  expect(r.heapRows).toBeLessThanOrEqual(300)
  expect(r.result).toBeGreaterThan(100)
})

/** Runs `act` in a transaction rolled back after it, so every call finds the rows as filled. */
async function rolledBack<T>(act: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  let out: T | undefined
  await t.db
    .transaction()
    .execute(async (trx) => {
      out = await act(trx)
      throw new RolledBack()
    })
    .catch((e) => {
      if (!(e instanceof RolledBack)) throw e
    })
  return out as T
}
class RolledBack extends Error {}

/**
 * A caller's loop: batches of `limit` while `more` is true, each batch's ids and `more`; with
 * `cursor`, each call given the span the last returned (requeueLoopStep, as the route runs a call
 * given the nextCursor before).
 */
async function retryLoop(
  db: Kysely<Database>,
  f: OutboxFilter,
  scope: string | null,
  senders: ReadonlySet<string> | null,
  limit: number,
  cursor = false,
) {
  const batches: { ids: string[]; more: boolean }[] = []
  let span: BulkLoopSpan | null = null
  for (let more = true; more; ) {
    const r: { items: { id: string }[]; more: boolean; next?: BulkLoopSpan | null } = cursor
      ? await requeueLoopStep(db, f, scope, { limit, senders, span })
      : await requeueMatching(db, f, scope, { limit, senders })
    span = r.next ?? null
    batches.push({ ids: r.items.map((i) => i.id), more: r.more })
    more = r.more
    if (batches.length > 100) throw new Error(`${JSON.stringify(f)}: still more after 100 batches`)
  }
  return batches
}

/** The batches the one-condition statement gave (lowestMatching of the whole filter), as retryLoop returns them. */
async function oneConditionBatches(
  f: OutboxFilter,
  scope: string | null,
  senders: ReadonlySet<string> | null,
  limit: number,
) {
  const ids = await lowestMatching(
    t.db,
    ['failed', 'cancelled'],
    (eb) => eb.and([matchOutbox(eb, f, scope), requeueable(eb), withinSenders(senders)(eb)]),
    100_000,
  )
  const batches: { ids: string[]; more: boolean }[] = []
  for (let at = 0; ; at += limit) {
    const batch = ids.slice(at, at + limit)
    batches.push({ ids: batch, more: batch.length === limit })
    if (batch.length < limit) return batches
  }
}

test('a bulk retry requeues what one condition finds, batch by batch, by code, status, tenant and sender', async () => {
  const senders = new Set(['orders@example.com'])
  const got: unknown[] = []
  const want: unknown[] = []
  for (const f of FILTERS) {
    for (const scope of [null, 'b']) {
      for (const s of [null, senders]) {
        const want1 = { f, scope, s, b: await oneConditionBatches(f, scope, s, 100) }
        got.push({ f, scope, s, b: await rolledBack((trx) => retryLoop(trx, f, scope, s, 100)) })
        want.push(want1)
        // Passing each call's span to the next: the same batches, nothing changing meanwhile.
        got.push({
          f,
          scope,
          s,
          b: await rolledBack((trx) => retryLoop(trx, f, scope, s, 100, true)),
        })
        want.push(want1)
      }
    }
  }
  expect(got).toEqual(want)
  // Not all nothing: the rare code's seven rows not past their expiresAt, in one batch.
  expect(
    await rolledBack((trx) => retryLoop(trx, { lastErrorCode: RARE }, null, null, 100)),
  ).toEqual([{ ids: ['1000', '2000', '4000', '5000', '7000', '8000', '10000'], more: false }])
})

test("a bulk retry by a rare lastErrorCode reads the heap of that code's rows, batch after batch", async () => {
  // The rolled-back retries before left their rows' pages not all-visible (as a retry does until
  // the next vacuum): an index-only scan reads the heap of every entry on such a page.
  await vacuumAllVisible(t.pool)
  const once = await outboxReadsOf(t.db, (trx) =>
    requeueMatching(trx, { lastErrorCode: RARE }, null, { limit: 1000 }),
  )
  expect(once.result.items).toHaveLength(7)
  // Ten rows carry the code among 1,093 failed and cancelled ones; their ids found, each of them is
  // read to check the rest of the filter, locked and updated: a few reads a row, not every failed one.
  expect(once.seqScans).toBe(0)
  expect(once.heapRows).toBeLessThanOrEqual(40)
  // A caller looping while `more` is true: three batches of 3, each reading that code's rows alone.
  const loop = await outboxReadsOf(t.db, (trx) =>
    retryLoop(trx, { lastErrorCode: RARE }, null, null, 3),
  )
  expect(loop.result.map((b) => b.ids.length)).toEqual([3, 3, 1])
  expect(loop.seqScans).toBe(0)
  expect(loop.heapRows).toBeLessThanOrEqual(3 * 30)
})

test('a row of the code settled while a bulk retry waits for its lock is not requeued', async () => {
  // A worker (or another caller) holds row 2000's lock, on its way to making it sent: the retry
  // reads the code's ids, 2000 among them (not committed yet), then waits for that lock; the
  // worker commits, and the retry's own check on the row's latest version leaves it.
  const worker = new pg.Client({ connectionString: t.url })
  await worker.connect()
  try {
    await worker.query('begin')
    await worker.query(
      `update mailer.email_outbox set status = 'sent', sent_at = now() where id = 2000`,
    )
    const r = await rolledBack(async (trx) => {
      const retrying = requeueMatching(trx, { lastErrorCode: RARE }, null, { limit: 1000 })
      await untilLockWaits(t.pool)
      await worker.query('commit')
      const items = (await retrying).items.map((i) => i.id)
      const { rows } = await sql<{ id: string; status: string }>`
        select id, status from mailer.email_outbox where id in (1000, 2000, 4000) order by id`.execute(
        trx,
      )
      return { items, rows: rows.map((x) => `${x.id} ${x.status}`) }
    })
    expect(r).toEqual({
      items: ['1000', '4000', '5000', '7000', '8000', '10000'],
      rows: ['1000 pending', '2000 sent', '4000 pending'],
    })
  } finally {
    await worker.end()
    await updateFlushed(
      t.pool,
      `update mailer.email_outbox set status = 'failed', sent_at = null where id = 2000`,
    )
    await vacuumAllVisible(t.pool)
  }
})
