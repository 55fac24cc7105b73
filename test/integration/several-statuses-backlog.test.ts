// A page of several statuses, pending among them, under a pending backlog: read near the cursor, not every pending row.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { listStatement } from '../../src/outbox/inspect.ts'
import { useTestDb } from '../support/db.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
beforeAll(async () => {
  // 4,000 rows: the oldest 100 sent, one in 40 failed, every other one pending (an outage's backlog).
  await insertRowsInStates(
    t.pool,
    `select 'big' as tenant,
            case when g <= 100 then 'sent' when g % 40 = 0 then 'failed' else 'pending' end as status,
            null::text as correlation_id, g as k
       from generate_series(1, 4000) g`,
    's.k',
  )
  await t.pool.query('analyze mailer.email_outbox')
})

type Node = Record<string, unknown> & { Plans?: Node[] }
/** Rows the plan's scans of the outbox returned or filtered out, over every loop. */
const rowsRead = (n: Node): number =>
  (String(n['Node Type']).includes('Scan') && n['Relation Name'] === 'email_outbox'
    ? (Number(n['Actual Rows'] ?? 0) + Number(n['Rows Removed by Filter'] ?? 0)) *
      Number(n['Actual Loops'] ?? 1)
    : 0) + (n.Plans ?? []).reduce((s, c) => s + rowsRead(c), 0)

test.each(['newest', 'oldest'] as const)(
  'status=pending&status=failed, order=%s: the page is right and reads a few pages of rows, not every pending id',
  async (order) => {
    const page = { limit: 50, order, after: order === 'newest' ? '3000' : '1000' }
    const q = listStatement(t.db, { status: ['pending', 'failed'] }, page, null)!
    const plain = q.compile(t.db)
    const { rows } = await t.pool.query<{ 'QUERY PLAN': [{ Plan: Node }] }>(
      `explain (analyze, format json) ${plain.sql}`,
      [...plain.parameters],
    )
    const read = rowsRead(rows[0]!['QUERY PLAN'][0].Plan)
    const got = (await q.execute(t.db)).rows.map((r) => String(r.id))
    const first = Number(page.after)
    const want = Array.from({ length: 51 }, (_, i) =>
      String(order === 'newest' ? first - 1 - i : first + 1 + i),
    )
    expect(got).toEqual(want)
    expect({ read, underAThousand: read < 1000 }).toMatchObject({ underAThousand: true })
  },
)

test.each([
  ['newest', '150', 149, 101],
  ['oldest', '3990', 3991, 4000],
] as const)(
  'order=%s past %s, where the rows near the cursor do not fill the page: every pending and failed row to the end, in order',
  async (order, after, from, to) => {
    const q = listStatement(
      t.db,
      { status: ['pending', 'failed'] },
      { limit: 50, order, after },
      null,
    )!
    const got = (await q.execute(t.db)).rows.map((r) => String(r.id))
    const step = from < to ? 1 : -1
    const want = Array.from({ length: Math.abs(to - from) + 1 }, (_, i) => String(from + step * i))
    expect(got).toEqual(want)
  },
)
