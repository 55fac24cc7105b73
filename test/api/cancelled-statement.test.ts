// A request whose statement the server cancels (its statement timeout, or pg_cancel_backend): a 503 that says nothing was stored and to try again, and a repeat stores it once.
import { afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { type App, appOnDefault, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let app: App
let tk: string
let locker: pg.Client | undefined

beforeAll(async () => {
  app = appOnDefault(t).app
  tk = await token()
})
afterEach(async () => {
  await locker?.query('rollback').catch(() => {})
  await locker?.end()
  locker = undefined
})

test('an enqueue stuck behind a lock on the outbox and cancelled on the server: 503 saying nothing was stored, and the same request with its key stores the mail once', async () => {
  // What an operator's `lock table` (a VACUUM FULL, a hand-run ALTER) left open does to the API.
  locker = new pg.Client({ connectionString: t.url })
  await locker.connect()
  await locker.query('begin')
  await locker.query('lock table mailer.email_outbox in access exclusive mode')
  const request = {
    token: tk,
    headers: { 'idempotency-key': 'order-4711' },
    body: { message: { to: 'a@example.com', subject: 'Order 4711', text: 'Thanks' } },
  }
  const answer = send(app, 'POST', '/v1/outbox', request)
  // The enqueue's session waits for the lock; cancelled as its statement timeout would (57014),
  // without the test waiting that timeout out.
  const waiting = await pollUntil(async () => {
    const r = await t.pool.query<{ pid: number }>(
      `select pid from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and pid <> $1`,
      [(await locker!.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid],
    )
    return r.rows[0]?.pid
  })
  await t.pool.query('select pg_cancel_backend($1)', [waiting])
  const refused = await answer
  expect(refused.status).toBe(503)
  expect(refused.headers.get('retry-after')).toBe('5')
  expect((refused.body as { detail: string }).detail).toBe(
    'the database cancelled the statement (past its 5000 ms timeout, or cancelled on the server: a lock held by another session, or a slow database); nothing was changed, try again',
  )
  await locker.query('rollback')
  const again = await send(app, 'POST', '/v1/outbox', request)
  expect(again.status).toBe(201)
  const rows = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
  expect(rows.rows[0].n).toBe(1)
})
