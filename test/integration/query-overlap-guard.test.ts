// The suite's overlap guard: a query handed to a pg client while one is unanswered there is caught.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { useTestDb } from '../support/db.ts'
import { takeQueryOverlaps } from '../support/query-overlap-guard.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let client: pg.Client | null = null
afterEach(async () => {
  await client?.end()
  client = null
})

async function connected(): Promise<pg.Client> {
  client = new pg.Client({ connectionString: t.url })
  await client.connect()
  return client
}

test('a query sent while another is unanswered on its client is recorded, with its text and caller', async () => {
  const c = await connected()
  const first = c.query('select 1 as n')
  const second = c.query('select 2 as n')
  const third = c.query('select 3 as n')
  await Promise.all([first, second, third])
  const overlaps = takeQueryOverlaps()
  // What pg@9 refuses: the second behind one running, the third behind one running and one queued.
  expect(overlaps.map((o) => o.split('\n')[0])).toEqual([
    'query while 1 unanswered: select 2 as n',
    'query while 2 unanswered: select 3 as n',
  ])
  expect(overlaps[0]).toContain('query-overlap-guard.test.ts')
})

test('queries sent one after another, each once the one before has answered, are not', async () => {
  const c = await connected()
  await c.query('select 1 as n')
  await c.query('select 2 as n')
  expect(takeQueryOverlaps()).toEqual([])
})

test('a query to a pool is not: the pool hands it a client of its own or waits for one', async () => {
  await Promise.all([t.pool.query('select 1 as n'), t.pool.query('select 2 as n')])
  expect(takeQueryOverlaps()).toEqual([])
})
