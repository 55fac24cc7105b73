// A send Graph accepted whose lease another worker took before its outcome was written: a stop counts it unrecorded (exit 1, named) when found lost since the stop began, not when found before.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { compiledBinary } from '../support/binary.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { pollUntil } from '../support/events.ts'
import {
  generateTestCertificate,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'
import { lastLine, spawnGraphBinaryWorker } from '../support/graph-binary-worker.ts'
import { listeningPort } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Builds and drives the real binary.
setDefaultTimeout(120_000)

const FROM = 'outbox@contoso.example'
const LOST_LINE = '"msg":"lease lost before the outcome was recorded"'
let bin: string
let cert: TestCertificate
const databases: TemplateDb[] = []
beforeAll(async () => {
  ;[bin, cert] = await Promise.all([compiledBinary(), generateTestCertificate()])
})
afterAll(async () => {
  await Promise.all(databases.map((d) => d.drop()))
})

/**
 * One row sent by the binary; Graph holds its answer until `answered`, and meanwhile the row's lease
 * token is replaced, as another worker's reclaim does: the accepted send's markSent finds it lost.
 * `signalWhile`: the SIGTERM comes while the send is held (the loss found during the stop), or once
 * the loss was logged (before it).
 */
async function acceptedSendLeaseLost(
  name: string,
  signalWhile: 'held' | 'lost',
  env: Record<string, string> = {},
) {
  const database = await cloneTemplateDb(name)
  databases.push(database)
  const fake = await startFakeGraph({ certificates: [cert.certPem], mailboxes: [FROM] })
  // Bounded and named: the steps before `answer` are a binary's start and polls of 30 s and 10 s.
  const answers = boundedLatches(90_000).make('the sendMail’s answer let go by the test')
  const answer = answers.resolve
  const answered = answers.wait()
  // Awaited by the fake's sendMail; should none come, the run-out is no one's.
  answered.catch(() => undefined)
  fake.setFaults({ answerAfter: answered })
  const { p, stdout } = spawnGraphBinaryWorker(bin, {
    databaseUrl: database.url,
    fake,
    cert,
    mailFrom: FROM,
    env: { SHUTDOWN_GRACE_SECONDS: '10', ...env },
  })
  let code: number
  let id: string
  try {
    await listeningPort(stdout, p.exited)
    const { rows } = await adminQuery(
      database.url,
      `select mailer.enqueue_email(jsonb_build_object('to', 'someone@contoso.example', 'subject', 'Hello', 'text', 'Hi'))::text as id`,
    )
    id = (rows[0] as { id: string }).id
    await pollUntil(async () => (fake.inFlight() >= 1 ? true : undefined), 30_000)
    const taken = await adminQuery(
      database.url,
      `update mailer.email_outbox set lease_token = gen_random_uuid()
        where id = $1 and status = 'sending' returning id`,
      [id],
    )
    expect(taken.rows.length).toBe(1)
    if (signalWhile === 'held') {
      p.kill('SIGTERM')
      await pollUntil(async () => (stdout.text().includes('"msg":"stopping"') ? true : undefined))
      answer()
    } else {
      answer()
      await pollUntil(async () => (stdout.text().includes(LOST_LINE) ? true : undefined), 30_000)
      p.kill('SIGTERM')
    }
    code = await p.exited
  } finally {
    answer()
    p.kill('SIGKILL')
    await fake.stop()
  }
  await stdout.ended
  const { line, unrecorded } = lastLine(stdout)
  return {
    id,
    accepted: fake.accepted.map((a) => a.outboxId),
    lost: stdout.text().includes(LOST_LINE),
    code,
    last: { msg: line.msg, unrecorded },
  }
}

// Under AMBIGUOUS_SEND_POLICY=hold (not the default): the last line's words are the process's settings'.
test('a send Graph accepted whose settlement finds its lease lost during the stop: exit 1, the last line names it and says it will be held', async () => {
  const r = await acceptedSendLeaseLost('outbox_stop_lost', 'held', {
    AMBIGUOUS_SEND_POLICY: 'hold',
  })
  expect(r).toEqual({
    id: r.id,
    accepted: [r.id],
    lost: true,
    code: 1,
    last: {
      msg: 'stopped with accepted sends unrecorded: held for an operator once their leases expire (failed ambiguous_send, not sent again)',
      unrecorded: [r.id],
    },
  })
})

test('one found lost before the signal is not the stop’s: said when found, the stop exits 0', async () => {
  const r = await acceptedSendLeaseLost('outbox_stop_lost_before', 'lost')
  expect(r).toEqual({
    id: r.id,
    accepted: [r.id],
    lost: true,
    code: 0,
    last: { msg: 'stopped', unrecorded: [] },
  })
})
