// outbox_graph_throttled_total by cause: Graph's 503 (unavailable) counted apart from its 429 (throttled), each series at 0 from a worker's start, so that an alert tells an outage from a throttle; a lookup and a send a full mailbox refuses alike.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createMetrics } from '../../src/api/metrics.ts'
import { fakeHealth } from '../api/support/fake-health.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { sendOnlyWorker, useGraphPerTest } from '../support/graph-per-test.ts'
import { graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const g = useGraphPerTest()
const MAIL_FROM = 'outbox@example.com'
const OTHER = 'other@example.com'

/** The counter's eight series of database `test`, in their order, each at 0 but the Graph causes `graph` counts. */
const throttledSeries = (graph: Partial<Record<string, number>>) =>
  ['graph', 'entra'].flatMap((service) =>
    ['throttled', 'unavailable', 'unreachable', 'other'].map(
      (cause) =>
        `outbox_graph_throttled_total{db="test",cause="${cause}",service="${service}"} ${service === 'graph' ? (graph[cause] ?? 0) : 0}`,
    ),
  )

test('a 503 counts as cause="unavailable", a 429 as cause="throttled"; every cause exported at 0 from the start', async () => {
  g.fake = await startFakeGraph({ clientSecret: 'right', mailboxes: [MAIL_FROM, OTHER] })
  // Graph down for MAIL_FROM (503, no Retry-After), throttling OTHER (429, a minute).
  g.fake.setFaults({
    pickSendMail: (mailbox) =>
      mailbox === MAIL_FROM
        ? { status: 503, code: 'ServiceUnavailable' }
        : { status: 429, code: 'ApplicationThrottled', retryAfter: '60' },
  })
  const engine = sendOnlyWorker(t, g, MAIL_FROM)
  const metrics = createMetrics({
    databases: [{ name: 'test', db: t.db, statements: t.statements }],
    health: fakeHealth(['test']),
    drains: true,
  })
  const series = async () =>
    (await metrics.render()).split('\n').filter((l) => l.startsWith('outbox_graph_throttled_total'))
  const atStart = await series()
  await enqueue(t)
  await enqueue(t, { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from: OTHER })
  await engine.start()
  await pollUntil(async () => {
    const r = await t.pool.query(
      `select count(*)::int as n from mailer.email_outbox where status = 'pending' and last_error_code is not null`,
    )
    return r.rows[0].n === 2 ? true : undefined
  })
  for (const e of engine.events.events) metrics.observe(e)
  expect({ atStart, after: await series() }).toEqual({
    atStart: throttledSeries({}),
    after: throttledSeries({ throttled: 1, unavailable: 1 }),
  })
})

test('a full mailbox (403 ErrorQuotaExceeded) refusing a mailbox lookup counts as cause="throttled", as it does refusing a send, and the row keeps its code', async () => {
  g.fake = await startFakeGraph({
    clientSecret: 'right',
    mailboxes: [MAIL_FROM, OTHER],
    fullMailboxes: [MAIL_FROM, OTHER],
  })
  const engine = graphWorker(t, g.fake, { workerId: 'w', mailFrom: MAIL_FROM, graceSeconds: 1 })
  g.engines.push(engine)
  const metrics = createMetrics({
    databases: [{ name: 'test', db: t.db, statements: t.statements }],
    health: fakeHealth(['test']),
    drains: true,
  })
  // MAIL_FROM's row: its earlier send interrupted two minutes ago, so it is looked up first.
  const looked = await enqueue(t)
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where id = $1`,
    [looked],
  )
  // OTHER's row: sent, and refused for the same reason.
  const sent = await enqueue(t, {
    to: 'rcpt@example.com',
    subject: 'Hello',
    text: 'Hi',
    from: OTHER,
  })
  await engine.start()
  const codes = await pollUntil(async () => {
    const r = await t.pool.query(
      `select id::text, last_error_code as code from mailer.email_outbox
        where status = 'pending' and last_error_code is not null order by id`,
    )
    return r.rows.length === 2 ? r.rows : undefined
  })
  for (const e of engine.events.events) metrics.observe(e)
  const series = (await metrics.render())
    .split('\n')
    .filter((l) => l.startsWith('outbox_graph_throttled_total'))
  expect({ codes, series }).toEqual({
    codes: [
      { id: looked, code: 'ErrorQuotaExceeded' },
      { id: sent, code: 'ErrorQuotaExceeded' },
    ],
    series: throttledSeries({ throttled: 2 }),
  })
})
