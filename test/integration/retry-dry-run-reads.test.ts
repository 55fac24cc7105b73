// A bulk retry's dry run by lastErrorCode: the same count as one condition gives, reading the heap of that code's failed and cancelled rows only.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import type { ExpressionBuilder } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { countRequeueable } from '../../src/outbox/bulk-requeue.ts'
import { countMatching } from '../../src/outbox/candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { requeueable, withinSenders } from '../../src/outbox/requeue.ts'
import { vacuumAllVisible } from '../support/all-visible-vacuum.ts'
import { useTestDb } from '../support/db.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates, updateFlushed } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const CODES = ['graph_rejected', 'ErrorInvalidRecipients', 'expired', 'MailboxNotEnabledForRESTAPI']

const t = useTestDb()
beforeAll(async () => {
  // 10,000 rows of two tenants: one in 10 failed (250 a code), one in 97 of the others cancelled
  // (a fifth of them after an error), the rest sent; among the failed ones some past their
  // expiresAt (not requeueable) and some not yet.
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
        set last_error_code = case when status = 'failed' then (array['${CODES.join("','")}'])[1 + (id / 10) % 4]
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

/** The count as one condition: the statement a dry run ran before countFinishedWithCode. */
const oneCondition = (
  f: OutboxFilter,
  scope: string | null,
  senders: ReadonlySet<string> | null,
  inside: boolean,
) =>
  countMatching(t.db, (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([
      matchOutbox(eb, f, scope),
      requeueable(eb),
      inside ? withinSenders(senders)(eb) : eb.not(withinSenders(senders)(eb)),
    ]),
  )

test('a retry dry run counts what one condition counts, by code, status, tenant and sender', async () => {
  const filters: OutboxFilter[] = [
    ...CODES.map((lastErrorCode) => ({ lastErrorCode })),
    { lastErrorCode: 'graph_rejected', status: ['cancelled'] },
    { lastErrorCode: 'graph_rejected', status: ['failed'] },
    { lastErrorCode: 'expired', status: ['failed', 'cancelled'], tenant: 'a' },
    { lastErrorCode: 'expired', ids: ['30', '40', '60', '70', '9999'] },
    { lastErrorCode: 'none_such' },
    { status: ['failed'] },
  ]
  const senders = new Set(['orders@example.com'])
  const got: unknown[] = []
  const want: unknown[] = []
  for (const f of filters) {
    for (const scope of [null, 'b']) {
      for (const [s, inside] of [
        [null, true],
        [senders, true],
        [senders, false],
      ] as const) {
        got.push({ f, scope, inside, n: await countRequeueable(t.db, f, scope, s, inside) })
        want.push({ f, scope, inside, n: await oneCondition(f, scope, s, inside) })
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
