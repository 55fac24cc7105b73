// An oldest-first walk and a row whose transaction commits after rows with higher ids: never passed over.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { SETTLE_WAIT_MS } from '../../src/outbox/settled-horizon.ts'
import { pollUntil } from '../support/events.ts'
import { sleepSteppedClock } from '../support/sleep-stepped-clock.ts'
import { appOnDefault, enqueueSql, send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

interface Page {
  items: { id: string }[]
  nextCursor: string | null
}

const list = (query: string) => send(s.app, 'GET', `/v1/outbox?${query}`, { token: s.tk })

/** A transaction of its own that enqueues one row and stays open until the test ends it. */
async function openInsert() {
  const client = await s.t.pool.connect()
  await client.query('begin')
  const r = await client.query(
    `select mailer.enqueue_email('{"to":"ada@example.com","subject":"Hi","text":"Hello"}'::jsonb)::text as id`,
  )
  const end = async (how: 'commit' | 'rollback') => {
    await client.query(how)
    client.release()
  }
  return { id: r.rows[0].id as string, end }
}

/**
 * Whether a list request's transaction is waiting on the open one (its last statement names
 * pg_locks). This database's sessions only: another run on the same server (TEST_DATABASE_URL) lists
 * pages of its own.
 */
const listWaiting = async () => {
  const r = await s.t.pool.query(
    `select 1 from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()
        and state = 'idle in transaction' and query like '%pg_locks%'`,
  )
  return r.rowCount ? ('waiting' as const) : undefined
}

describe('order=oldest and a transaction still open with a lower id', () => {
  test('a page waits for it: the row it commits is listed in its place, not passed over', async () => {
    const first = await enqueueSql(s.t.pool)
    const late = await openInsert()
    const after = await enqueueSql(s.t.pool)
    expect(BigInt(late.id)).toBeLessThan(BigInt(after))
    let answered = false
    const request = list('order=oldest&limit=10').finally(() => {
      answered = true
    })
    await pollUntil(async () => (answered ? 'answered' : await listWaiting()))
    await late.end('commit')
    const r = await request
    expect(r.status).toBe(200)
    expect((r.body as Page).items.map((i) => i.id)).toEqual([first, late.id, after])
  })

  test('a walk by pages of one reaches every row, the late one included', async () => {
    const ids = [await enqueueSql(s.t.pool)]
    const late = await openInsert()
    ids.push(late.id, await enqueueSql(s.t.pool), await enqueueSql(s.t.pool))
    const seen: string[] = []
    let open = true
    let cursor: string | null = null
    for (let n = 0; n < 10; n++) {
      let answered = false
      const request = list(`order=oldest&limit=1${cursor ? `&cursor=${cursor}` : ''}`).finally(
        () => {
          answered = true
        },
      )
      // The late row commits only once a page waits for it: a walk that never waits passes it.
      if (open && (await pollUntil(async () => (answered ? 'answered' : await listWaiting())))) {
        if (!answered) {
          await late.end('commit')
          open = false
        }
      }
      const p = (await request).body as Page
      seen.push(...p.items.map((i) => i.id))
      cursor = p.nextCursor
      if (!cursor) break
    }
    if (open) await late.end('commit')
    expect(seen).toEqual(ids)
  })

  test('a rolled-back insert leaves a gap the walk goes past', async () => {
    const first = await enqueueSql(s.t.pool)
    const late = await openInsert()
    const after = await enqueueSql(s.t.pool)
    let answered = false
    const request = list('order=oldest').finally(() => {
      answered = true
    })
    await pollUntil(async () => (answered ? 'answered' : await listWaiting()))
    await late.end('rollback')
    expect(((await request).body as Page).items.map((i) => i.id)).toEqual([first, after])
  })

  test('a writer open past the wait answers 503 with a Retry-After, not a page that passes its row: the wait is timed by the injected clock', async () => {
    await enqueueSql(s.t.pool)
    const late = await openInsert()
    await enqueueSql(s.t.pool)
    // A clock that moves only when slept on: the 2 s pass on it, none on the wall clock. The wait
    // polls every 5 ms: each of its sleeps passing 100 ms at least, it reads pg_locks some 20
    // times, not 400 (which took 8-26 s at load 20-40, against this test's 30 s).
    const { c, clock } = sleepSteppedClock({ sleepsAtLeastMs: 100 })
    const startMono = c.mono
    const app = appOnDefault(s.t, { clock }).app
    try {
      const r = await send(app, 'GET', '/v1/outbox?order=oldest&status=pending', { token: s.tk })
      expect([r.status, r.headers.get('retry-after')]).toEqual([503, '1'])
      expect(c.mono - startMono).toBeGreaterThan(SETTLE_WAIT_MS)
      expect(r.body).toMatchObject({ type: 'urn:outbox-mailer:problem:database_unavailable' })
      expect((r.body as { detail: string }).detail).toContain('list newest first')
    } finally {
      await late.end('commit')
    }
  })

  test('newest first does not wait: a row committed late below its cursor is reached as the walk goes down', async () => {
    const late = await openInsert()
    const after = await enqueueSql(s.t.pool)
    const r = await list('limit=10')
    expect((r.body as Page).items.map((i) => i.id)).toEqual([after])
    await late.end('commit')
  })
})
