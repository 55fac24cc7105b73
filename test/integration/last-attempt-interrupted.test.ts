// A row's last attempt whose send was interrupted, with lookups on: looked up before the row fails, sent if Graph has it, never sent again.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import { useTestDb } from '../support/db.ts'
import { drainedToEnd } from '../support/drained-row.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { type FakeGraph, type GraphFault, startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'

setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()

const claimOne = async () =>
  (await claimBatch(t.db, { limit: 1, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }))
    .leases

/** The row `id` claimed past its attempts (only to look its send up), that lease settled so. */
async function claimedPastAndSettled(id: string, settlement: Settlement) {
  const [lease] = await claimOne()
  expect(lease?.pastAttempts).toBe(true)
  await settleLeases(
    t.db,
    [{ id, token: lease!.token, settlement, ambiguous: true, uncounted: true, startedAt: null }],
    { workerId: 'w', defaultMaxAttempts: 3, throttleDeadlineSeconds: 86_400 },
  )
}

/** Reclaimed, the row (max_attempts 1) waits to be looked up: pending, its one attempt counted once, marked. */
async function expectLeftToLookUp(id: string) {
  const row = await rowOf(t, id)
  expect({
    status: row.status,
    attempts: row.attempts,
    marked: row.send_started_at !== null,
  }).toEqual({
    status: 'pending',
    attempts: 1,
    marked: true,
  })
  expect(await attemptsOf(t, id, 'attempt, outcome')).toEqual([
    { attempt: 1, outcome: 'lease_expired' },
  ])
}

/** A row of `maxAttempts` whose sends meet `faults` in turn, drained by a worker with lookups on, to its final state. */
async function drained(faults: GraphFault[], maxAttempts: number) {
  const fake: FakeGraph = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  fake.setFaults({ sendMail: faults })
  const engine = graphWorker(t, fake, {
    workerId: 'w',
    mailFrom: 'sender@example.com',
    graceSeconds: 1,
  })
  engines.push(engine)
  const id = await enqueue(t, undefined, { maxAttempts })
  // A 2 s send deadline, a 1 s grace and 1 s retries each time.
  const { row, history } = await drainedToEnd(t, engine, id, 30_000, 'attempt, outcome, error_code')
  // The only row: a request a fault answers before its body is read names no outbox id.
  const sends = fake.requests.filter((q) => q.kind === 'sendMail').length
  const accepted = fake.accepted.filter((a) => a.outboxId === id).length
  return { row, history, sends, accepted }
}

test('a row on its last attempt whose send Graph accepted and never answered is looked up, not failed: sent once', async () => {
  const { row, history, sends, accepted } = await drained(['accept_then_hang'], 1)
  expect({ sends, accepted }).toEqual({ sends: 1, accepted: 1 })
  expect({ status: row.status, attempts: row.attempts, last_error: row.last_error }).toEqual({
    status: 'sent',
    attempts: 1,
    last_error: null,
  })
  // The lookup's outcome is recorded under the attempt it looked up: none counted past max_attempts.
  expect(history).toEqual([
    { attempt: 1, outcome: 'retry', error_code: 'timeout' },
    { attempt: 1, outcome: 'sent', error_code: null },
  ])
})

test('a row whose last send timed out and never reached Graph is looked up past the grace, then failed out of attempts, not sent again', async () => {
  const { row, history, sends, accepted } = await drained([{ status: 500, code: 'x' }, 'hang'], 2)
  expect({ sends, accepted }).toEqual({ sends: 2, accepted: 0 })
  expect({
    status: row.status,
    attempts: row.attempts,
    code: row.last_error_code,
    error: row.last_error,
    mark: row.send_started_at,
  }).toEqual({
    status: 'failed',
    attempts: 2,
    code: 'timeout',
    error:
      'attempts exhausted; last error: Graph request exceeded its deadline (that send was looked up and not found: not sent)',
    mark: null,
  })
  expect(history).toEqual([
    { attempt: 1, outcome: 'retry', error_code: 'x' },
    { attempt: 2, outcome: 'retry', error_code: 'timeout' },
    { attempt: 2, outcome: 'failed', error_code: 'timeout' },
  ])
})

test("a claim past the row's attempts, only to look its interrupted send up, whose worker stopped: reclaimed to be looked up again, no attempt counted", async () => {
  const id = await enqueue(t, undefined, { maxAttempts: 1 })
  // As its last attempt's interrupted send leaves it with lookups on: pending, attempts spent, marked.
  await t.pool.query(
    `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '1 minute' where id = $1`,
    [id],
  )
  const leases = await claimOne()
  expect(leases.map((l) => [l.id, l.attempt, l.pastAttempts])).toEqual([[id, 2, true]])
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
  await expectLeftToLookUp(id)
})

test('a row on its last attempt whose worker stopped during the send, reclaimed with lookups on: left to be looked up, not failed', async () => {
  const id = await enqueue(t, undefined, { maxAttempts: 1 })
  const leases = await claimOne()
  expect(leases.map((l) => [l.id, l.attempt])).toEqual([[id, 1]])
  // Its send under way (the check before it noted the start), then the worker gone.
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now(), lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
  await expectLeftToLookUp(id)
})

test("a row past its attempts whose every lookup's worker stops is not claimed without end: failed lease_expired, its mark kept", async () => {
  const id = await enqueue(t, undefined, { maxAttempts: 1 })
  // As its last attempt's interrupted send leaves it with lookups on: pending, attempts spent, marked.
  await t.pool.query(
    `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '1 minute' where id = $1`,
    [id],
  )
  // A crash loop (the lookup's worker killed each time): before a past lease, a claim counted an
  // attempt and the reclaim failed the row at max_attempts; a lookup's claim counts none.
  let claims = 0
  for (; claims < 10; claims++) {
    const leases = await claimOne()
    if (leases.length === 0) break
    expect(leases.map((l) => [l.id, l.pastAttempts])).toEqual([[id, true]])
    await t.pool.query(
      `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
      [id],
    )
    await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
  }
  const row = await rowOf(t, id)
  expect({
    claims,
    status: row.status,
    attempts: row.attempts,
    code: row.last_error_code,
    marked: row.send_started_at !== null,
  }).toEqual({ claims: 3, status: 'failed', attempts: 1, code: 'lease_expired', marked: true })
})

for (const policy of ['resend', 'hold'] as const) {
  test(`a row left to be looked up, claimed by a worker with lookups off (policy ${policy}): failed, never sent`, async () => {
    const fake: FakeGraph = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
    closing.push(() => fake.stop())
    const id = await enqueue(t, undefined, { maxAttempts: 1 })
    // As a worker with lookups on leaves it (its last attempt's send interrupted), before a
    // redeploy with GRAPH_MAILBOX_LOOKUP=false.
    await t.pool.query(
      `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '1 minute',
              last_error_code = 'timeout', last_error = 'Graph request exceeded its deadline' where id = $1`,
      [id],
    )
    await t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error)
       values ($1, 1, 'w0', 'retry', 'timeout', 'Graph request exceeded its deadline')`,
      [id],
    )
    const engine = graphWorker(t, fake, {
      workerId: 'w',
      mailFrom: 'sender@example.com',
      graceSeconds: 1,
      lookups: false,
      policy,
    })
    engines.push(engine)
    await engine.start()
    const row = await pollUntil(async () => {
      const r = await rowOf(t, id)
      return r.status === 'pending' || r.status === 'sending' ? undefined : r
    }, 30_000)
    expect({
      sends: fake.requests.filter((q) => q.kind === 'sendMail').length,
      status: row.status,
      attempts: row.attempts,
      code: row.last_error_code,
      error: row.last_error,
      marked: row.send_started_at !== null,
    }).toEqual(
      policy === 'resend'
        ? {
            sends: 0,
            status: 'failed',
            attempts: 1,
            code: 'timeout',
            error:
              'attempts exhausted; last error: Graph request exceeded its deadline (that send may have delivered it)',
            marked: true,
          }
        : // Held for review as any interrupted send under hold: retried through the API, it is sent.
          {
            sends: 0,
            status: 'failed',
            attempts: 1,
            code: 'ambiguous_send',
            error:
              'an earlier interrupted send may have delivered it; held for review (retry it to send)',
            marked: false,
          },
    )
  })
}

test('a row past its attempts whose lookup keeps failing waits, uncounted, only until the throttle deadline: then failed throttled, its mark kept', async () => {
  const id = await enqueue(t, undefined, { maxAttempts: 1 })
  await t.pool.query(
    `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '2 days' where id = $1`,
    [id],
  )
  // Its last attempt's retry, then a day and more of lookups asked again (database time, by hand).
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error, finished_at)
     values ($1, 1, 'w0', 'retry', 'timeout', 'Graph request exceeded its deadline', now() - interval '2 days'),
            ($1, 1, 'w0', 'throttled', 'lookup_failed', 'could not look it up', now() - interval '25 hours')`,
    [id],
  )
  const lookupFailed = {
    kind: 'retry',
    code: 'lookup_failed',
    message: 'could not look the interrupted send up in the mailbox; will ask again',
    delayMs: 1000,
    throttled: true,
    ambiguous: true,
  } as const
  await claimedPastAndSettled(id, lookupFailed)
  const row = await rowOf(t, id)
  expect({
    status: row.status,
    attempts: row.attempts,
    code: row.last_error_code,
    marked: row.send_started_at !== null,
  }).toEqual({ status: 'failed', attempts: 1, code: 'throttled', marked: true })
})

test("a row whose last attempt's worker stopped during the send, looked up and not found: failed with that stop's code and error, not an earlier attempt's", async () => {
  const id = await enqueue(t, undefined, { maxAttempts: 2 })
  const stopped = 'the worker holding the lease stopped during the send; outcome unknown'
  // Attempt 1 failed (a 500), attempt 2's worker stopped mid-send: reclaimed pending with lookups on.
  await t.pool.query(
    `update mailer.email_outbox set attempts = 2, send_started_at = now() - interval '1 minute',
            last_error_code = 'lease_expired', last_error = $2 where id = $1`,
    [id, stopped],
  )
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error)
     values ($1, 1, 'w0', 'retry', 'x', 'Graph answered 500'),
            ($1, 2, 'w0', 'lease_expired', 'lease_expired', $2)`,
    [id, stopped],
  )
  await claimedPastAndSettled(id, { kind: 'exhausted', notSent: true })
  const row = await rowOf(t, id)
  expect({
    status: row.status,
    attempts: row.attempts,
    code: row.last_error_code,
    error: row.last_error,
  }).toEqual({
    status: 'failed',
    attempts: 2,
    code: 'lease_expired',
    error: `attempts exhausted; last error: ${stopped} (that send was looked up and not found: not sent)`,
  })
})
