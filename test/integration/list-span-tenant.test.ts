// A tenant's walk of the primary key tells it nothing of other tenants' rows: its pages and cursors are the same whichever of theirs exist.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type ListOrder, listOutbox } from '../../src/outbox/inspect.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MESSAGE = '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'

/** Rows of `tenants`, one each, in id order; their ids. */
async function insert(tenants: string[]): Promise<string[]> {
  const ids: string[] = []
  for (const tenant of tenants) {
    const r = await t.pool.query<{ id: string }>(
      `insert into mailer.email_outbox (tenant, message) values ($1, $2::jsonb) returning id`,
      [tenant, MESSAGE],
    )
    ids.push(String(r.rows[0]!.id))
  }
  return ids
}

/** Every page `tiny`'s key is answered, spans of 4 rows: its items and the cursor it is given. */
async function pagesOfTiny(order: ListOrder) {
  const pages: { items: string[]; next: string | null }[] = []
  let after: string | undefined
  for (let n = 0; n < 100; n++) {
    const page = await listOutbox(t.db, {}, { limit: 2, order, after, spanRows: 4 }, 'tiny')
    pages.push({ items: page.items.map((i) => i.id), next: page.next })
    if (page.next === null) return pages
    after = page.next
  }
  throw new Error('the cursor never ended')
}

test.each(['newest', 'oldest'] as const)(
  "another tenant's row removed between two walks: a tenant's key is answered the same pages and cursors, order=%s",
  async (order) => {
    const ids = await insert([
      ...Array<string>(9).fill('big'),
      'tiny',
      ...Array<string>(9).fill('big'),
      'tiny',
      ...Array<string>(9).fill('big'),
    ])
    const before = await pagesOfTiny(order)
    // Another tenant's row the walk's spans pass over (neither end's): its existence is theirs.
    await t.pool.query('delete from mailer.email_outbox where id = $1', [ids[14]])
    const after = await pagesOfTiny(order)
    expect(after).toEqual(before)
  },
)

test.each(['newest', 'oldest'] as const)(
  "a cursor at any position, one the key's client wrote itself: the same answer whether another tenant's row exists or not, order=%s",
  async (order) => {
    const ids = await insert([
      ...Array<string>(7).fill('big'),
      'tiny',
      ...Array<string>(7).fill('big'),
    ])
    const answers = () =>
      Promise.all(
        ids.map((id) =>
          listOutbox(t.db, {}, { limit: 2, order, after: id, spanRows: 4 }, 'tiny').then((p) => ({
            items: p.items.map((r) => r.id),
            next: p.next,
          })),
        ),
      )
    const before = await answers()
    await t.pool.query('delete from mailer.email_outbox where id = $1', [ids[3]])
    expect(await answers()).toEqual(before)
  },
)

test.each(['newest', 'oldest'] as const)(
  'a cursor at the largest id a bigint holds, or next to it: an answer, not a database error, order=%s',
  async (order) => {
    const [id] = await insert(['tiny'])
    for (const from of ['9223372036854775807', '9223372036854775806', '9223372036854770000']) {
      const seen: string[] = []
      let after: string | null = from
      for (let n = 0; after !== null && n < 10; n++) {
        const page = await listOutbox(t.db, {}, { limit: 2, order, after, spanRows: 4 }, 'tiny')
        seen.push(...page.items.map((i) => i.id))
        after = page.next
      }
      expect({ from, seen, ended: after === null }).toEqual({
        from,
        seen: order === 'newest' ? [id!] : [],
        ended: true,
      })
    }
  },
)
