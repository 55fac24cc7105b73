// A mailbox lookup that Graph answers with a failure during a stop's grace: a failed lookup as at any other time, not a release.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()

/**
 * `n` rows whose earlier send was interrupted (send_started_at two minutes ago, past the lookup
 * grace), committed at once: a worker's one claim takes them all and looks each up first.
 */
async function enqueueInterrupted(n: number): Promise<void> {
  const c = await t.pool.connect()
  try {
    await c.query('begin')
    await c.query(
      `select mailer.enqueue_email($1::jsonb, '{}'::jsonb) from generate_series(1, $2::int)`,
      [JSON.stringify({ to: 'rcpt@example.com', subject: 'Hello', text: 'Hi there' }), n],
    )
    await c.query(`update mailer.email_outbox set send_started_at = now() - interval '2 minutes'`)
    await c.query('commit')
  } finally {
    c.release()
  }
}

test('a lookup Graph answers 500 once a stop has begun is a failed lookup (lookup_failed, its backoff), not released due at once', async () => {
  const ROWS = 2
  const fake = await startFakeGraph({ clientSecret: 'right' })
  closing.push(() => fake.stop())
  let stopBegan = () => {}
  const answered = new Promise<void>((resolve) => {
    stopBegan = resolve
  })
  // Each row's first lookup (Sent Items) held until the stop has begun, then answered 500.
  fake.setFaults({
    lookup: Array.from({ length: ROWS }, () => ({
      status: 500,
      code: 'InternalServerError',
      message: 'An internal server error occurred.',
    })),
    lookupAnswerAfter: answered,
  })
  await enqueueInterrupted(ROWS)
  // Its requests' deadline 10 s: the held lookups are answered well within it. Its backoff 45 to
  // 75 s (the retry base 60 s), so `later` reads it however slow the stop and the read that follow
  // are: at graphWorker's 1 s (0.75 to 1.25 s) a loaded machine read the row due already.
  const engine = graphWorker(t, fake, {
    workerId: 'stopping-worker',
    mailFrom: 'sender@example.com',
    graceSeconds: 30,
    timeoutSeconds: 10,
    retryBaseSeconds: 60,
  })
  engines.push(engine)
  await engine.start()
  await pollUntil(async () =>
    fake.requests.filter((r) => r.kind === 'lookup').length === ROWS ? true : undefined,
  )
  // The grace outlasts the held lookups: Graph's answer, not the hard abort, ends them.
  const stopped = engine.stop(30_000)
  await pollUntil(async () => (engine.drainer.status().running ? undefined : true))
  stopBegan()
  await stopped
  const rows = await t.pool.query(
    `select o.status, o.attempts, o.send_started_at is not null as marked, o.send_at > now() as later,
            array_agg(a.outcome || ' ' || coalesce(a.error_code, '') order by a.id) as history
       from mailer.email_outbox o join mailer.email_attempts a on a.outbox_id = o.id
      group by o.id order by o.id`,
  )
  // Asked again after the backoff, as a lookup failing at any other time, its mark kept.
  expect(rows.rows).toEqual(
    Array.from({ length: ROWS }, () => ({
      status: 'pending',
      attempts: 0,
      marked: true,
      later: true,
      history: ['throttled lookup_failed'],
    })),
  )
  expect(fake.accepted).toHaveLength(0)
})
