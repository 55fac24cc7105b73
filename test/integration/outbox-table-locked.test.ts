// A lock on mailer.email_outbox that blocks its writes (CREATE INDEX's SHARE) holds up no read or readiness probe behind a prime of ours.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { SECRET, token } from '../api/support/tokens.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t.drop()
})

// Below the pool's statement_timeout (30 s), which ends a statement stuck behind the lock: a read
// that waited for one has not answered by then.
const ANSWER_BOUND_MS = 15_000

test('GET /v1/outbox/{id} on connections opened while a SHARE lock holds the outbox (a CREATE INDEX) answers, under --role all', async () => {
  const id = await enqueue(t, { to: 'ada@example.com', subject: 's', text: 't' })
  const running = await serve(
    loadConfig({
      DATABASE_URL: t.url,
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'outbox@example.com',
      HOST: '127.0.0.1',
      PORT: '0',
      API_JWT_SECRET: SECRET,
    }),
    { role: 'all', log: silentLogger },
  )
  const base = `http://127.0.0.1:${running.port}`
  const locker = new pg.Client({ connectionString: t.url })
  await locker.connect()
  try {
    await pollUntil(async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined))
    await pollUntil(async () => {
      const r = await t.pool.query('select status from mailer.email_outbox where id = $1', [id])
      return r.rows[0].status === 'sent' ? true : undefined
    })
    // Reads go on under it (ACCESS SHARE); the worker's claims wait for it, as they must.
    await locker.query('begin')
    await locker.query('lock table mailer.email_outbox in share mode')
    const tk = await token()
    // More at once than the pool keeps idle: most go out on connections it opens now.
    const reads = Array.from({ length: 6 }, () =>
      fetch(`${base}/v1/outbox/${id}`, { headers: { authorization: `Bearer ${tk}` } }).then(
        (r) => r.status,
        // The server's own idle timeout (10 s) closes a request that waited that long.
        (e: { code?: string }) => e.code ?? String(e),
      ),
    )
    const bound = Bun.sleep(ANSWER_BOUND_MS).then(() => 'no answer while the lock was held')
    const statuses = await Promise.all(reads.map((r) => Promise.race([r, bound])))
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200])
  } finally {
    await locker.query('rollback').catch(() => {})
    await locker.end()
    await running.stop('test')
  }
})

test('a worker started while a SHARE lock holds the outbox is found reachable by /readyz, its LISTEN session primed without waiting for the lock', async () => {
  const locker = new pg.Client({ connectionString: t.url })
  await locker.connect()
  await locker.query('begin')
  await locker.query('lock table mailer.email_outbox in share mode')
  const running = await serve(
    loadConfig({
      DATABASE_URL: t.url,
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'outbox@example.com',
      HOST: '127.0.0.1',
      PORT: '0',
    }),
    { role: 'worker', log: silentLogger },
  )
  try {
    const base = `http://127.0.0.1:${running.port}`
    await pollUntil(async () =>
      running.listeners.get('default')?.state() === 'listening' ? true : undefined,
    )
    const seen: string[] = []
    // Until ready, or while the lock is still held: a probe stuck behind it answers past the bound.
    const lockHeld = Bun.sleep(ANSWER_BOUND_MS)
    let held = true
    void lockHeld.then(() => {
      held = false
    })
    for (;;) {
      const r = await fetch(`${base}/readyz`)
      const db = ((await r.json()) as { databases: { problem: string | null }[] }).databases[0]!
      seen.push(db.problem ?? 'ready')
      if (db.problem === null || !held) break
      await Bun.sleep(200)
    }
    // Reachable throughout: the lock stops no statement a probe runs.
    expect(seen.filter((p) => p !== 'ready')).toEqual([])
    expect(seen.at(-1)).toBe('ready')
  } finally {
    await locker.query('rollback').catch(() => {})
    await locker.end()
    await running.stop('test')
  }
})
