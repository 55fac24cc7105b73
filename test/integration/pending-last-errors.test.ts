// status's pending rows waiting after an error: found behind an untried backlog, counted exactly up to the bound, read without walking the backlog.
import { beforeEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { pendingLastErrors } from '../../src/outbox/pending-last-errors.ts'
import { useTestDb } from '../support/db.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
beforeEach(() => t.reset())

const MESSAGE = `'{"to":["a@example.com"],"subject":"s","text":"t"}'::jsonb`

/** `n` pending rows due `ago` ago, with `code` as their last error (null: never tried). */
const pending = (n: number, ago: string, code: string | null) =>
  t.pool.query(
    `insert into mailer.email_outbox (message, status, send_at, last_error_code, last_error)
     select ${MESSAGE}, 'pending', now() - $1::interval, $2::text, case when $2::text is not null then 'refused' end
       from generate_series(1, $3::int)`,
    [ago, code, n],
  )

// What more than 10,000 due rows leave (a burst, a catch-up after an outage): a row that met an
// error is given back due later (a throttle's Retry-After, a transient failure's backoff, Graph
// out of reach), behind every row not yet tried. (A refused credential and MAIL_FROM's pause name
// the due rows themselves, in the claim's order: waiting-rows.ts; no other cause does.)
async function backlogWithRetries() {
  await pending(10_050, '2 hours', null)
  await pending(3, '-1 minute', 'ApplicationThrottled')
  await pending(1, '-5 minutes', 'graph_unreachable')
}

/** What the read answers for these codes' rows (most first, as written), each of them counted. */
const counted = (rows: Record<string, number>, complete: boolean) => ({
  total: Object.values(rows).reduce((n, r) => n + r, 0),
  byCode: Object.entries(rows).map(([code, n]) => ({ code, rows: n })),
  complete,
})

describe('pendingLastErrors', () => {
  test('behind more than 10,000 untried due rows, the rows given back after an error are counted, complete', async () => {
    await backlogWithRetries()
    expect(await pendingLastErrors(t.db, { limit: 5, scanLimit: 10_000 })).toEqual(
      counted({ ApplicationThrottled: 3, graph_unreachable: 1 }, true),
    )
  })

  test('complete exactly when every such row was looked at: scanLimit of them is complete, one more is not', async () => {
    await pending(2, '-1 minute', 'ApplicationThrottled')
    await pending(2, '1 minute', 'graph_unreachable')
    expect(await pendingLastErrors(t.db, { limit: 5, scanLimit: 4 })).toMatchObject({
      total: 4,
      complete: true,
    })
    await pending(1, '-2 minutes', 'ApplicationThrottled')
    // The first 4 in the claim's order (due soonest): a lower bound, said so.
    expect(await pendingLastErrors(t.db, { limit: 5, scanLimit: 4 })).toEqual(
      counted({ ApplicationThrottled: 2, graph_unreachable: 2 }, false),
    )
  })

  test("a row waiting for its mailbox's pacing turn met no error: not counted, nor looked at", async () => {
    // MAILBOX_RATE_PER_MINUTE's own schedule (README: each row of a mailbox's backlog goes back
    // uncounted, code mailbox_paced, due at its turn): status counts those as held back.
    await pending(2_000, '-1 minute', 'mailbox_paced')
    await pending(1, '-2 minutes', 'ApplicationThrottled')
    await t.pool.query('analyze mailer.email_outbox')
    const reads = await outboxReadsOf(t.db, (trx) =>
      pendingLastErrors(trx, { limit: 5, scanLimit: 10 }),
    )
    expect(reads.result).toEqual(counted({ ApplicationThrottled: 1 }, true))
    expect(reads.rowsRead).toBeLessThanOrEqual(3)
  })

  test('the untried backlog is not read: the rows looked at are those with a code', async () => {
    await backlogWithRetries()
    await t.pool.query('analyze mailer.email_outbox')
    const reads = await outboxReadsOf(t.db, (trx) =>
      pendingLastErrors(trx, { limit: 5, scanLimit: 10_000 }),
    )
    expect(reads.result.total).toBe(4)
    expect(reads.seqScans).toBe(0)
    // The four coded rows' entries (and their heap pages), not the 10,050 rows before them.
    expect(reads.rowsRead).toBeLessThanOrEqual(10)
  })
})
