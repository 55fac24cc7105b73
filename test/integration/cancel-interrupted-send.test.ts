// A pending row whose earlier send was interrupted, its cancel requested: its worker looks that send up and never sends it again; sent when the mailbox has it, else cancelled.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { renderLease } from '../../src/outbox/render.ts'
import type { Sender } from '../../src/outbox/sender.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { type FakeGraph, startFakeGraph } from '../support/fake-graph.ts'
import { type GraphWorkerOptions, graphWorker } from '../support/graph-worker.ts'

setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()

const MAIL_FROM = 'sender@example.com'

interface Case {
  /** The interrupted send reached Graph, which filed the message. */
  delivered: boolean
  /** Mail.Read granted: lookups answer (else 403: the question stays open). */
  mailRead?: boolean
  worker?: Partial<GraphWorkerOptions>
}

const expireLease = (id: string) =>
  t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )

const claimOne = (workerId: string) =>
  claimBatch(t.db, {
    limit: 1,
    workerId,
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: true,
  })

/**
 * A row claimed and its send started (handed to `deliver`, which may send it), its worker gone:
 * reclaimed pending with the send's mark, a minute old; then its cancel requested, as the API
 * records it for such a row.
 */
async function interruptedThenCancelled(deliver?: (lease: Lease) => Promise<void>) {
  const id = await enqueue(t)
  const [lease] = (await claimOne('w0')).leases
  await deliver?.(lease!)
  await expireLease(id)
  await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
  await t.pool.query(
    `update mailer.email_outbox
        set send_started_at = send_started_at - interval '1 minute', cancel_requested_at = now()
      where id = $1 and status = 'pending' and send_started_at is not null`,
    [id],
  )
  return id
}

/**
 * interruptedThenCancelled, delivered or not; then a worker (lookups on unless `worker` says) is
 * started on it.
 */
async function cancelledAfterInterruptedSend(c: Case) {
  const fake: FakeGraph = await startFakeGraph({
    clientSecret: 'right',
    concurrencyLimit: 1000,
    mailRead: c.mailRead ?? true,
  })
  closing.push(() => fake.stop())
  let graph: Sender | undefined
  const engine = graphWorker(t, fake, {
    workerId: 'w',
    mailFrom: MAIL_FROM,
    graceSeconds: 1,
    ...c.worker,
    wrapSender: (g) => {
      graph = g
      return g
    },
  })
  engines.push(engine)
  const id = await interruptedThenCancelled(async (lease) => {
    if (!c.delivered) return
    const sent = await graph!.send(renderLease(lease, new Map(), MAIL_FROM), AbortSignal.any([]))
    expect(sent.kind).toBe('sent')
  })
  await engine.start()
  return { id, fake }
}

const settled = (id: string) =>
  pollUntil(async () => {
    const r = await rowOf(t, id)
    return ['sent', 'failed', 'cancelled'].includes(r.status) ? r : undefined
  }, 30_000)

const sendsOf = (fake: FakeGraph) => fake.requests.filter((q) => q.kind === 'sendMail').length

/** A settled row as the tests judge it: its status and last_error, whether it keeps its mark, and the sends Graph got. */
const judged = (row: Record<string, unknown>, fake: FakeGraph) => ({
  status: row.status,
  error: row.last_error,
  marked: row.send_started_at !== null,
  sends: sendsOf(fake),
})

test('delivered before the cancel: found in the mailbox, sent, never sent again; its history says the cancel came after', async () => {
  const { id, fake } = await cancelledAfterInterruptedSend({ delivered: true })
  const row = await settled(id)
  expect({
    status: row.status,
    cancelRequested: row.cancel_requested_at !== null,
    sends: sendsOf(fake),
    attempts: row.attempts,
  }).toEqual({ status: 'sent', cancelRequested: true, sends: 1, attempts: 1 })
  // The lookup is no attempt of its own: its entry numbers the attempt whose send it looked up.
  expect((await attemptsOf(t, id, 'attempt, outcome, error')).at(-1)).toEqual({
    attempt: 1,
    outcome: 'sent',
    error:
      'sent by an earlier send that was interrupted (found in the mailbox): the cancel came after the message was delivered',
  })
})

test('not delivered: looked up past the grace and not found, cancelled as not sent, its mark cleared', async () => {
  const { id, fake } = await cancelledAfterInterruptedSend({ delivered: false })
  const row = await settled(id)
  expect({ ...judged(row, fake), code: row.last_error_code, attempts: row.attempts }).toEqual({
    status: 'cancelled',
    code: 'cancelled',
    error: 'cancelled; an interrupted send was looked up in the mailbox and not found: not sent',
    marked: false,
    sends: 0,
    attempts: 1,
  })
  expect((await attemptsOf(t, id, 'attempt, outcome')).at(-1)).toEqual({
    attempt: 1,
    outcome: 'cancelled',
  })
})

test('too early to tell: the row waits pending, its cancel and mark kept, to be looked up again; nothing sent', async () => {
  const { id, fake } = await cancelledAfterInterruptedSend({
    delivered: false,
    worker: { graceSeconds: 3600 },
  })
  await pollUntil(
    async () =>
      (await attemptsOf(t, id, 'error_code')).some(
        (h: { error_code: string }) => h.error_code === 'lookup_too_early',
      )
        ? true
        : undefined,
    30_000,
  )
  const row = await rowOf(t, id)
  expect({
    status: row.status,
    code: row.last_error_code,
    cancelRequested: row.cancel_requested_at !== null,
    marked: row.send_started_at !== null,
    sends: sendsOf(fake),
  }).toEqual({
    status: 'pending',
    code: 'lookup_too_early',
    cancelRequested: true,
    marked: true,
    sends: 0,
  })
})

for (const policy of ['resend', 'hold'] as const) {
  test(`a lookup Graph refuses (no Mail.Read, policy ${policy}): cancelled, not sent, its history saying delivery is unknown, its mark kept`, async () => {
    const { id, fake } = await cancelledAfterInterruptedSend({
      delivered: true,
      mailRead: false,
      worker: { policy },
    })
    expect(judged(await settled(id), fake)).toEqual({
      status: 'cancelled',
      error: 'cancelled; an interrupted send could not be looked up; outcome unknown',
      marked: true,
      sends: 1,
    })
  })
}

test('lookups off: cancelled at once, never sent again, its history saying the interrupted send may have delivered it', async () => {
  const { id, fake } = await cancelledAfterInterruptedSend({
    delivered: true,
    worker: { lookups: false },
  })
  expect({
    ...judged(await settled(id), fake),
    lookups: fake.requests.filter((q) => q.kind === 'lookup').length,
    attempts: (await rowOf(t, id)).attempts,
  }).toEqual({
    status: 'cancelled',
    error: 'cancelled; an interrupted send may have delivered it',
    marked: true,
    sends: 1,
    lookups: 0,
    attempts: 1,
  })
})

for (const lookups of [true, false]) {
  test(`a lookup whose worker keeps stopping (its leases expire, reclaimed with lookups ${lookups ? 'on' : 'off'}): cancelled, never failed; delivery unknown, its mark kept, no attempt counted`, async () => {
    const id = await interruptedThenCancelled()
    // A worker that claims it and never settles, again and again (bounded: a crash loop ends).
    let stops = 0
    for (; stops < 6 && (await rowOf(t, id)).status === 'pending'; stops++) {
      expect((await claimOne('w1')).leases.map((l) => l.id)).toEqual([id])
      await expireLease(id)
      await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups })
    }
    const row = await rowOf(t, id)
    expect({ ...row, marked: row.send_started_at !== null, stops }).toMatchObject({
      status: 'cancelled',
      last_error_code: 'cancelled',
      last_error:
        'cancelled; an interrupted send could not be looked up (the worker looking it up stopped); outcome unknown',
      marked: true,
      attempts: 1,
      // With lookups on, looked up again until its stops in a row (its send's own among them) end it.
      stops: lookups ? 2 : 1,
    })
    expect((await attemptsOf(t, id, 'attempt, outcome')).at(-1)).toEqual({
      attempt: 1,
      outcome: 'cancelled',
    })
  })
}
