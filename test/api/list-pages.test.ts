// GET /v1/outbox's keyset pages while rows are inserted and change status between pages, and what a cursor is.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { enqueueSql, send, setState } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

interface Page {
  items: { id: string; status: string }[]
  nextCursor: string | null
}

async function page(query: string, cursor: string | null): Promise<Page> {
  const url = `/v1/outbox?${query}${cursor ? `&cursor=${cursor}` : ''}`
  const r = await send(s.app, 'GET', url, { token: s.tk })
  expect([url, r.status]).toEqual([url, 200])
  return r.body as Page
}

const toPending = (id: string) =>
  s.t.pool.query(
    `update mailer.email_outbox set status = 'pending', sent_at = null where id = $1`,
    [id],
  )

/**
 * Walks every page of `query`, calling `between` after each one with the ids seen so far; returns
 * the ids in the order the pages gave them.
 */
async function walk(query: string, between: (seen: string[]) => Promise<void>) {
  const seen: string[] = []
  let cursor: string | null = null
  for (let n = 0; n < 100; n++) {
    const p = await page(query, cursor)
    seen.push(...p.items.map((i) => i.id))
    if (!p.nextCursor) return seen
    cursor = p.nextCursor
    await between(seen)
  }
  throw new Error('more than 100 pages')
}

const ORDERS = [
  ['newest', ''],
  ['oldest', '&order=oldest'],
] as const

describe.each([
  ['by the primary key', ''],
  ['through the correlation id lookup', '&correlationId=batch-1'],
  ["through each status's index (several statuses)", '&status=cancelled'],
])('a status filter, %s', (_, extra) => {
  test.each(ORDERS)(
    'rows inserted and rows changing status between pages: none twice, none that matched throughout skipped, order=%s',
    async (order, orderParam) => {
      const oldest = order === 'oldest'
      // Not passed yet: below the page's last id newest first, above it oldest first.
      const ahead = (id: string, last: bigint) => (oldest ? BigInt(id) > last : BigInt(id) < last)
      const pending: string[] = []
      const failed: string[] = []
      for (let i = 0; i < 24; i++) {
        const id = await enqueueSql(s.t.pool, { correlationId: 'batch-1' })
        if (i % 3 === 0) {
          await setState(s.t.pool, id, 'failed')
          failed.push(id)
        } else pending.push(id)
      }
      const left = new Set<string>() // pending rows sent before their page came
      const joined = new Set<string>() // failed rows retried before their page came
      const inserted: string[] = []
      const seen = await walk(`status=pending&limit=3${extra}${orderParam}`, async (sofar) => {
        const last = BigInt(sofar.at(-1)!)
        // A row already listed leaves the filter and comes back: it must not be listed again.
        await setState(s.t.pool, sofar[0]!, 'sent')
        await toPending(sofar[0]!)
        // A pending row not listed yet is sent: it no longer matches and is not listed.
        const goes = pending.find((id) => ahead(id, last) && !left.has(id) && !sofar.includes(id))
        if (goes) {
          await setState(s.t.pool, goes, 'sent')
          left.add(goes)
        }
        // A failed row not passed yet is retried: it matches now and is listed once.
        const comes = failed.find((id) => ahead(id, last) && !joined.has(id))
        if (comes) {
          await toPending(comes)
          joined.add(comes)
        }
        // New rows take higher ids: a walk newest first that started before them does not reach
        // them; oldest first reaches each (none commits out of id order here).
        if (inserted.length < 4)
          inserted.push(await enqueueSql(s.t.pool, { correlationId: 'batch-1' }))
      })
      expect(new Set(seen).size).toBe(seen.length)
      const sign = oldest ? -1 : 1
      expect(seen).toEqual([...seen].sort((a, b) => (BigInt(b) > BigInt(a) ? sign : -sign)))
      const throughout = pending.filter((id) => !left.has(id))
      for (const id of throughout) expect([id, seen.includes(id)]).toEqual([id, true])
      for (const id of left) expect([id, seen.includes(id)]).toEqual([id, false])
      for (const id of inserted) expect([id, seen.includes(id)]).toEqual([id, oldest])
      const reached = oldest ? inserted : []
      expect(seen.toSorted()).toEqual([...throughout, ...joined, ...reached].toSorted())
      expect(left.size).toBeGreaterThan(0)
      expect(joined.size).toBeGreaterThan(0)
    },
  )
})

describe('several statuses', () => {
  test('status repeated lists the rows of each, each order walking every one once', async () => {
    const want: string[] = []
    for (const state of [
      'failed',
      'sent',
      'cancelled',
      'pending',
      'failed',
      'cancelled',
    ] as const) {
      const id = await enqueueSql(s.t.pool)
      if (state !== 'pending') await setState(s.t.pool, id, state)
      if (state === 'failed' || state === 'cancelled') want.push(id)
    }
    const oldest = await walk('status=failed&status=cancelled&limit=2&order=oldest', async () => {})
    expect(oldest).toEqual(want)
    const newest = await walk('status=cancelled&status=failed&limit=2', async () => {})
    expect(newest).toEqual(want.toReversed())
  })

  test('each value is checked; a comma-separated list is a 400 showing the repeated form', async () => {
    const bad = await send(s.app, 'GET', '/v1/outbox?status=failed&status=lost', { token: s.tk })
    expect([bad.status, (bad.body as { errors: unknown[] }).errors]).toEqual([
      400,
      [
        {
          path: 'status',
          message: expect.stringMatching(/^must be one of pending.*\(given "lost"\)$/),
        },
      ],
    ])
    const comma = await send(s.app, 'GET', '/v1/outbox?status=failed,cancelled', { token: s.tk })
    expect([comma.status, (comma.body as { errors: unknown[] }).errors]).toEqual([
      400,
      [
        {
          path: 'status',
          message:
            'one status per status=, repeated for several: status=failed&status=cancelled (given "failed,cancelled")',
        },
      ],
    ])
  })
})

describe('a cursor', () => {
  test('is a position (rows below an id), so a cursor of one filter continues another below it', async () => {
    const ids: string[] = []
    for (let i = 0; i < 6; i++) ids.push(await enqueueSql(s.t.pool, { tenant: i % 2 ? 'a' : 'b' }))
    const first = await page('tenant=a&limit=1', null)
    expect(first.items.map((i) => i.id)).toEqual([ids[5]!])
    const other = await page('tenant=b&limit=10', first.nextCursor)
    expect(other.items.map((i) => i.id)).toEqual([ids[4]!, ids[2]!, ids[0]!])
  })
})

describe('a cursor of one order given with the other', () => {
  test.each([
    ['newest', 'oldest'],
    ['oldest', 'newest'],
  ])(
    'a cursor order=%s returned is a 400 naming cursor with order=%s, not a wrong page',
    async (from, to) => {
      for (let i = 0; i < 3; i++) await enqueueSql(s.t.pool)
      const first = await page(`order=${from}&limit=1`, null)
      expect(first.nextCursor).not.toBeNull()
      const url = `/v1/outbox?order=${to}&limit=1&cursor=${first.nextCursor}`
      const r = await send(s.app, 'GET', url, { token: s.tk })
      expect([r.status, (r.body as { errors: unknown[] }).errors]).toEqual([
        400,
        [
          {
            path: 'cursor',
            message: `continues a list in order=${from}, not order=${to}: give it with order=${from}, or leave cursor out to start order=${to} at its first page`,
          },
        ],
      ])
    },
  )

  test('a cursor of a release before order= (newest first) still continues the default order', async () => {
    const ids: string[] = []
    for (let i = 0; i < 3; i++) ids.push(await enqueueSql(s.t.pool))
    // As every earlier release built it: base64url of "o1:" and the page's last id.
    const old = Buffer.from(`o1:${ids[2]}`).toString('base64url')
    expect((await page('limit=5', old)).items.map((i) => i.id)).toEqual([ids[1]!, ids[0]!])
    expect((await page('order=newest&limit=5', old)).items.map((i) => i.id)).toEqual([
      ids[1]!,
      ids[0]!,
    ])
  })
})
