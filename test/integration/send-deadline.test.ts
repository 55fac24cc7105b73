// A Graph send's deadline runs from before the last check that recorded its start: its request never reaches Graph past send_started_at plus GRAPH_REQUEST_TIMEOUT_SECONDS.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { startAnswerHoldingProxy } from '../support/answer-holding-proxy.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()

test('a last check answered after the send’s deadline (start plus the request timeout, in database time): not sent then, given back unsent, sent once later', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const proxy = await startAnswerHoldingProxy(t.url)
  const handle = openDb({ name: 'test', url: proxy.url, log: silentLogger, maxConnections: 4 })
  closing.push(async () => {
    proxy.release()
    await handle.close()
    proxy.close()
  })
  // The first last check runs and commits (send_started_at), and its worker hears of it late.
  proxy.holdAnswerOnceAt('outbox_start_sends')
  const engine = graphWorker(t, fake, {
    workerId: 'w',
    mailFrom: 'sender@example.com',
    graceSeconds: 8,
    timeoutSeconds: 2,
    handle,
  })
  engines.push(engine)
  const id = await enqueue(t)
  await engine.start()
  await pollUntil(async () => (proxy.holding() ? true : undefined), 20_000)
  // A lookup of this send (the worker stopping here, say) counts on its request being over by its
  // start plus its timeout: the answer comes once database time is past that. holding() is true
  // from the last check's sending: send_started_at stays null (the comparison not true) until the
  // check has run and committed, so this waits for that too (seen null there under a delay).
  await pollUntil(async () => {
    const { rows } = await t.pool.query(
      `select now() > send_started_at + interval '2 seconds' as past from mailer.email_outbox where id = $1`,
      [id],
    )
    return rows[0]?.past === true ? true : undefined
  }, 20_000)
  proxy.release()
  await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
  expect(fake.accepted.filter((a) => a.outboxId === id)).toHaveLength(1)
  expect(await attemptsOf(t, id, 'outcome, worker_id')).toEqual([
    { outcome: 'released', worker_id: 'w' },
    { outcome: 'sent', worker_id: 'w' },
  ])
})
