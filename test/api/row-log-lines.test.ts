// The API's log lines about rows name them as the worker's do (outboxId, db), bulk ones each row acted on.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { type App, buildApp, enqueueSql, send, setState } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const lines: Record<string, unknown>[] = []
let app: App
let tk: string

beforeAll(async () => {
  const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
  // Two names for one database: with several, an id alone does not say which row it is.
  app = buildApp(
    [
      { name: 'shop', db: t.db, pool: t.pool },
      { name: 'acme', db: t.db, pool: t.pool },
    ],
    { log },
  ).app
  tk = await token()
})

/** The lines of this request that are not its access line. */
const linesOf = (requestId: string | null) =>
  lines.filter((l) => l.requestId === requestId && l.msg !== 'request')

test("a row's story is found in the log by its outboxId and db, from its enqueue to a bulk retry", async () => {
  // The worker's lines name a row `outboxId` with `db` (send will be retried, settled, …): the
  // API's lines about the same row must be found by the same query, `select(.outboxId == "6")`.
  const enq = await send(app, 'POST', '/v1/outbox?db=shop', {
    token: tk,
    body: { message: { to: 'ada@example.com', subject: 'Hi', text: 'Hello' } },
  })
  const id = (enq.body as { id: string }).id
  expect(linesOf(enq.headers.get('x-request-id'))).toEqual([
    expect.objectContaining({ msg: 'enqueued', outboxId: id, db: 'shop' }),
  ])

  const cancel = await send(app, 'POST', `/v1/outbox/${id}/cancel?db=shop`, { token: tk })
  expect(linesOf(cancel.headers.get('x-request-id'))).toEqual([
    expect.objectContaining({ msg: 'cancel', outboxId: id, db: 'shop', outcome: 'cancelled' }),
  ])

  const retry = await send(app, 'POST', `/v1/outbox/${id}/retry?db=shop`, { token: tk })
  expect(linesOf(retry.headers.get('x-request-id'))).toEqual([
    expect.objectContaining({ msg: 'retry', outboxId: id, db: 'shop' }),
  ])

  const failed = [await enqueueSql(t.pool), await enqueueSql(t.pool)]
  for (const f of failed) await setState(t.pool, f, 'failed')
  const bulk = await send(app, 'POST', '/v1/outbox/retry?db=acme', {
    token: tk,
    body: { filter: { ids: failed } },
  })
  expect(bulk.status).toBe(200)
  expect(linesOf(bulk.headers.get('x-request-id'))).toEqual([
    expect.objectContaining({
      msg: 'bulk retry',
      db: 'acme',
      dryRun: false,
      matched: 2,
      outboxIds: failed,
    }),
  ])
  // No line names a row by a bare `id`, which a query for outboxId misses.
  expect(lines.filter((l) => 'id' in l)).toEqual([])
})
