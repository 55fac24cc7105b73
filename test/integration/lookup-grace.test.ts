// An interrupted send looked up before Graph filed the message: "not found" so soon means "look again later", never a second send.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { cutAtFirstSend } from '../support/cut-at-first-send.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { type FakeGraph, startFakeGraph } from '../support/fake-graph.ts'
import { type GraphWorkerOptions, graphWorker } from '../support/graph-worker.ts'
import { lookupWaitOf, WAITING_PAST_EXPIRY } from '../support/lookup-wait.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'
// Shortened from LOOKUP_GRACE_SECONDS so the test waits one grace out; long against the 1 s
// between the interrupted send and its lookup here.
const GRACE_SECONDS = 8
const { engines, closing } = endedAfterEach()

async function graph(): Promise<FakeGraph> {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  return fake
}

/** A worker wired as serve wires Graph, lookups on, with `policy`; stopped after each test. */
function worker(
  fake: FakeGraph,
  o: { workerId: string; policy: 'resend' | 'hold' } & Partial<GraphWorkerOptions>,
): TestEngine {
  const engine = graphWorker(t, fake, { mailFrom: MAIL_FROM, graceSeconds: GRACE_SECONDS, ...o })
  engines.push(engine)
  return engine
}

const acceptedFor = (fake: FakeGraph, id: string) => fake.accepted.filter((a) => a.outboxId === id)
/** The row's lookup came before the grace was out: asked again later (or, wrongly, sent again). */
const lookedUpEarly = (id: string) => (e: EngineEvent) =>
  e.type === 'settled' && e.id === id && (e.outcome === 'sent' || e.code === 'lookup_too_early')

test('a send Graph accepted but answered 504 is looked up before Graph filed it: looked up again after the grace, found, sent once', async () => {
  const fake = await graph()
  // Accepted, then a gateway's 504 (Retry-After 1): the retry a second later looks it up first,
  // while the message is still unfiled.
  fake.setFaults({ sendMail: ['accept_then_504'], fileLate: true })
  const engine = worker(fake, { workerId: 'w', policy: 'resend' })
  const id = await enqueue(t)
  await engine.start()

  await engine.events.waitFor(lookedUpEarly(id), 20_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  // Graph files the message after the first lookup; the next one (after the grace) finds it.
  expect(fake.fileLateMessages()).toBe(1)
  await engine.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  expect(fake.requests.filter((r) => r.kind === 'lookup' && r.outboxId === id).length).toBe(
    // Each lookup asks Sent Items, then (not found there) the whole mailbox; the last one is
    // answered by Sent Items.
    3,
  )
  const row = await rowOf(t, id)
  expect([row.status, row.send_started_at]).toEqual(['sent', null])
  expect(await attemptsOf(t, id, 'outcome, error_code')).toEqual([
    { outcome: 'throttled', error_code: 'GatewayTimeout' },
    { outcome: 'throttled', error_code: 'lookup_too_early' },
    { outcome: 'sent', error_code: null },
  ])
})

test('hold policy: a worker that loses its database after Graph accepted the send; the reclaim’s lookup comes before Graph filed it, looks again, and settles the row sent, not held and not sent twice', async () => {
  const fake = await graph()
  // The worker's database goes away (its connections cut) as Graph takes the send: accepted,
  // answered 202, and never recorded.
  const { handle, proxy, close } = await cutAtFirstSend(t, fake, { fileLate: true })
  closing.push(close)
  const cutOff = worker(fake, { workerId: 'cut-off', policy: 'hold', handle, leaseSeconds: 4 })
  const id = await enqueue(t)
  await cutOff.start()
  await pollUntil(async () => (acceptedFor(fake, id).length === 1 ? true : undefined), 20_000)

  // Another worker reclaims the row once its lease has ended and looks it up: too early.
  const other = worker(fake, { workerId: 'still-connected', policy: 'hold', leaseSeconds: 4 })
  await other.start()
  await other.events.waitFor(lookedUpEarly(id), 30_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  fake.fileLateMessages()
  await other.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  const row = await rowOf(t, id)
  expect([row.status, row.last_error_code]).toEqual(['sent', null])
  expect(await attemptsOf(t, id, 'outcome, worker_id, error_code')).toEqual([
    { outcome: 'lease_expired', worker_id: 'cut-off', error_code: 'lease_expired' },
    { outcome: 'throttled', worker_id: 'still-connected', error_code: 'lookup_too_early' },
    { outcome: 'sent', worker_id: 'still-connected', error_code: null },
  ])
  await proxy.up()
})

test('a send that timed out while Graph took it is looked up a grace after its deadline, not after its start: found once Graph files it, never sent again', async () => {
  const fake = await graph()
  // Graph takes the request and answers nothing until the worker's deadline (6 s) ends it; it
  // files the message later still, as a slow Graph does. The retry's lookup, a second after the
  // deadline, is past a grace counted from the send's start (5 s) but not from its deadline.
  fake.setFaults({ sendMail: ['accept_then_hang'], fileLate: true })
  const engine = worker(fake, {
    workerId: 'w',
    policy: 'resend',
    timeoutSeconds: 6,
    graceSeconds: 5,
  })
  const id = await enqueue(t)
  await engine.start()

  await engine.events.waitFor(lookedUpEarly(id), 30_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  expect(fake.fileLateMessages()).toBe(1)
  await engine.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  expect(await attemptsOf(t, id, 'outcome, error_code')).toEqual([
    { outcome: 'retry', error_code: 'timeout' },
    { outcome: 'throttled', error_code: 'lookup_too_early' },
    { outcome: 'sent', error_code: null },
  ])
})

test('an expiresAt before the grace is out: the row waits past it, pending with its mark, to be looked up once the grace is out (never sent), not failed expired saying its send may have delivered it', async () => {
  const fake = await graph()
  fake.setFaults({ sendMail: ['accept_then_504'], fileLate: true })
  // The lookup to come again (the grace out) is past the row's expiresAt, within the grace and
  // the limit past it (settle.ts).
  const engine = worker(fake, { workerId: 'w', policy: 'resend', graceSeconds: 600 })
  const id = await enqueue(t, undefined, {
    expiresAt: new Date(Date.now() + 300_000).toISOString(),
  })
  await engine.start()
  // Its settlement after the 504's (the lookup's).
  const looked = await engine.events.waitFor(
    (e) => settledFor(id)(e) && e.type === 'settled' && e.code !== 'GatewayTimeout',
    20_000,
  )
  expect(looked).toMatchObject({ outcome: 'throttled', code: 'lookup_too_early' })
  expect(acceptedFor(fake, id)).toHaveLength(1)
  expect(await lookupWaitOf(t, id)).toEqual(WAITING_PAST_EXPIRY)
  expect((await rowOf(t, id)).last_error_code).toBe('lookup_too_early')
  expect(fake.requests.filter((q) => q.kind === 'sendMail')).toHaveLength(1)
})

test('a send interrupted under a longer GRAPH_REQUEST_TIMEOUT_SECONDS than the looking worker’s is looked up again a grace after that send’s end, not after the looking worker’s own timeout: never sent twice', async () => {
  const fake = await graph()
  const { handle, proxy, close } = await cutAtFirstSend(t, fake, { fileLate: true })
  closing.push(close)
  // Worker A, before a restart that shortened LEASE_SECONDS and so the timeout: 60 s of request.
  const long = worker(fake, {
    workerId: 'long-timeout',
    policy: 'resend',
    handle,
    timeoutSeconds: 60,
    leaseSeconds: 120,
  })
  const id = await enqueue(t)
  await long.start()
  await pollUntil(async () => (acceptedFor(fake, id).length === 1 ? true : undefined), 20_000)
  // Database time steps past A's deadline: its send began 61 s ago, and its lease (which the send
  // never outlives, A's heartbeats having failed) ended as its request's deadline did, a second ago.
  await t.pool.query(
    `update mailer.email_outbox
        set send_started_at = send_started_at - interval '61 seconds',
            send_deadline_at = send_deadline_at - interval '61 seconds',
            lease_expires_at = now() - interval '1 second'
      where id = $1`,
    [id],
  )
  // Worker B, after the restart: a 2 s timeout, so its own deadline plus grace ended 51 s ago.
  const short = worker(fake, { workerId: 'short-timeout', policy: 'resend', timeoutSeconds: 2 })
  await short.start()
  await short.events.waitFor(lookedUpEarly(id), 30_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  // Graph files A's message within the grace after A's send ended; B's next lookup finds it.
  expect(fake.fileLateMessages()).toBe(1)
  await short.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(acceptedFor(fake, id)).toHaveLength(1)
  expect(await attemptsOf(t, id, 'outcome, worker_id, error_code')).toEqual([
    { outcome: 'lease_expired', worker_id: 'long-timeout', error_code: 'lease_expired' },
    { outcome: 'throttled', worker_id: 'short-timeout', error_code: 'lookup_too_early' },
    { outcome: 'sent', worker_id: 'short-timeout', error_code: null },
  ])
  await proxy.up()
})
