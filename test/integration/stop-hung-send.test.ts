// A stop with one send hung at Graph: the sends Graph accepted meanwhile are recorded without waiting for it (a kill in that wait sent them again).
import { expect, setDefaultTimeout, test } from 'bun:test'
import { STOP_GATHER_MS } from '../../src/outbox/stop-gather.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'
import { heldLongSleepsClock } from '../support/held-long-sleeps-clock.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { closing } = endedAfterEach()

const SENDS = 3

test('a stop with sends in flight, one of them hung at Graph: the others’ sent outcomes are recorded while it hangs, not once it ends or a bound passes', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right' })
  closing.push(() => fake.stop())
  // Every sendMail waits for `answer`; then the first hangs until its client gives up, the rest are accepted.
  // Bounded and named: the steps before `answer` are two 20 s polls at most.
  const answers = boundedLatches(45_000).make('the sendMails’ answers let go by the test')
  const answer = answers.resolve
  const answered = answers.wait()
  // Awaited by the fake's sendMails; should none come, the run-out is no one's.
  answered.catch(() => undefined)
  fake.setFaults({ answerAfter: answered, sendMail: ['hang'] })
  // Neither the stop's gather bound nor its grace passes (nor the hung request's own deadline, 55 s,
  // within the waits below; nor the lease, 120 s): a recording seen comes from the sends that reported.
  const held = heldLongSleepsClock(STOP_GATHER_MS)
  const w = graphWorker(t, fake, {
    workerId: 'w1',
    mailFrom: 'sender@example.com',
    graceSeconds: 30,
    timeoutSeconds: 55,
    leaseSeconds: 120,
    clock: held.clock,
  })
  await w.start()
  for (let i = 0; i < SENDS; i++) await enqueue(t)
  await pollUntil(async () => (fake.inFlight() >= SENDS ? true : undefined), 20_000)
  const stopped = w.stop(30_000)
  closing.unshift(async () => {
    held.release()
    await stopped
  })
  await pollUntil(async () => (w.drainer.status().running ? undefined : true), 20_000)
  answer()
  await pollUntil(async () => (fake.accepted.length === SENDS - 1 ? true : undefined), 20_000)
  const sentIds = async () =>
    (
      await t.pool.query<{ id: string }>(
        `select id::text from mailer.email_outbox where status = 'sent' order by id`,
      )
    ).rows.map((r) => r.id)
  // Bounded below the hung request's deadline: failing, it shows what was recorded by then.
  await pollUntil(
    async () => ((await sentIds()).length === SENDS - 1 ? true : undefined),
    20_000,
  ).catch(() => {})
  const hungOpen = fake.requests.filter((r) => r.kind === 'sendMail' && r.answeredAt === null)
  expect({ sent: await sentIds(), hungOpen: hungOpen.length }).toEqual({
    sent: fake.accepted.map((a) => a.outboxId ?? '?').sort(),
    hungOpen: 1,
  })
})
