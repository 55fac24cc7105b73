// An interrupted send whose row cannot be sent as it stood on its reclaim (no longer renders, or past its expiresAt): looked up when it can be, its mark kept when not, never sent twice.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { DbHandle } from '../../src/db/open.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { requeueOutbox } from '../../src/outbox/requeue.ts'
import { cutAtFirstSend } from '../support/cut-at-first-send.ts'
import { useTestDb } from '../support/db.ts'
import { diedMidSendPastExpiry } from '../support/died-mid-send.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { type FakeGraph, startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'
const BOSS = 'boss@acme.example'
const { engines, closing } = endedAfterEach()

/** A worker wired as serve wires Graph, lookups on, a 4 s lease; `allowed` is MAIL_FROM_ALLOWED. */
function worker(
  fake: FakeGraph,
  workerId: string,
  o: { allowed?: string[]; handle?: DbHandle } = {},
): TestEngine {
  const engine = graphWorker(t, fake, {
    workerId,
    mailFrom: MAIL_FROM,
    leaseSeconds: 4,
    // Graph files at once here: the grace only delays the test.
    graceSeconds: 0,
    ...(o.handle && { handle: o.handle }),
    ...(o.allowed && { allowedSenders: o.allowed }),
  })
  engines.push(engine)
  return engine
}

/**
 * A worker whose database goes away as Graph takes its send (accepted, answered 202, never
 * recorded): the row is left `sending` with the mark of a send that may have delivered it.
 */
async function interruptedSend(fake: FakeGraph, id: string): Promise<void> {
  const { handle, proxy, close } = await cutAtFirstSend(t, fake)
  const cutOff = worker(fake, 'cut-off', { handle })
  // Stopped last, its route back: the recording it would retry until it gives up (some 10 s after the
  // send) ends at once, refused by the lease its row was reclaimed under. After every assertion.
  engines.splice(engines.indexOf(cutOff), 1)
  closing.push(async () => {
    const stopped = cutOff.stop()
    await proxy.up()
    await stopped
  }, close)
  await cutOff.start()
  await pollUntil(
    async () => (fake.accepted.some((a) => a.outboxId === id) ? true : undefined),
    20_000,
  )
  const row = await rowOf(t, id)
  expect([row.status, row.send_started_at === null]).toEqual(['sending', false])
  // The cut-off worker can no longer beat: its lease ends (database time) as its send's deadline
  // does, where the lookup's grace (0 here) begins, not the rest of the 4 s lease later.
  await t.pool.query(
    'update mailer.email_outbox set lease_expires_at = send_deadline_at where id = $1',
    [id],
  )
}

/** The row once a worker started after the crash has settled it. */
async function settledAfterTheCrash(fake: FakeGraph, id: string) {
  const after = worker(fake, 'after')
  await after.start()
  await after.events.waitFor(settledFor(id), 30_000)
  return rowOf(t, id)
}

test('MAIL_FROM_ALLOWED narrowed across a crash: the reclaimed row fails sender_not_allowed with its mark kept, and its retry finds the message in the mailbox instead of sending it again', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const id = await enqueue(t, { from: BOSS, to: 'rcpt@example.com', subject: 'Hi', text: 'x' })
  await interruptedSend(fake, id)

  // The restart's MAIL_FROM_ALLOWED no longer lists the row's sender.
  const narrowed = worker(fake, 'narrowed', { allowed: [MAIL_FROM] })
  await narrowed.start()
  await narrowed.events.waitFor(settledFor(id, 'failed'), 30_000)
  const failed = await rowOf(t, id)
  expect([failed.status, failed.last_error_code, failed.send_started_at === null]).toEqual([
    'failed',
    'sender_not_allowed',
    false,
  ])
  // Not "not sent": the interrupted send may have delivered it.
  expect(failed.last_error).toBe(
    'message.from names a mailbox MAIL_FROM_ALLOWED does not list: not sent again; an earlier interrupted send may have delivered it',
  )
  await narrowed.stop()

  // The operator lists the sender again and retries the row.
  await requeueOutbox(t.db, id, null)
  const widened = worker(fake, 'widened', { allowed: [MAIL_FROM, BOSS] })
  await widened.start()
  await widened.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(fake.accepted.filter((a) => a.outboxId === id)).toHaveLength(1)
  expect(await attemptsOf(t, id, 'outcome, worker_id, error_code')).toEqual([
    { outcome: 'lease_expired', worker_id: 'cut-off', error_code: 'lease_expired' },
    { outcome: 'failed', worker_id: 'narrowed', error_code: 'sender_not_allowed' },
    { outcome: 'sent', worker_id: 'widened', error_code: null },
  ])
})

test('a template removed across a crash: the reclaimed row fails with its mark kept, and its retry once the template is back finds the message instead of sending it again', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const template = `insert into mailer.templates (name, subject, text_body, to_addresses)
                    values ('welcome', 'Hi {{name}}', 'x', '{"rcpt@example.com"}')`
  await t.pool.query(template)
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, template, source_row)
     values (null, 'welcome', '{"name": "Ada"}'::jsonb) returning id`,
  )
  const id = rows[0]!.id
  await interruptedSend(fake, id)

  await t.pool.query(`delete from mailer.templates where name = 'welcome'`)
  const without = worker(fake, 'without')
  await without.start()
  await without.events.waitFor(settledFor(id, 'failed'), 30_000)
  const failed = await rowOf(t, id)
  expect([failed.status, failed.last_error_code, failed.send_started_at === null]).toEqual([
    'failed',
    'template_not_found',
    false,
  ])
  expect(failed.last_error).toBe(
    'template "welcome" no longer exists: not sent again; an earlier interrupted send may have delivered it',
  )
  await without.stop()

  await t.pool.query(template)
  await requeueOutbox(t.db, id, null)
  const restored = worker(fake, 'restored')
  await restored.start()
  await restored.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(fake.accepted.filter((a) => a.outboxId === id)).toHaveLength(1)
})

test('expiresAt passed across a crash, lookups on: the reclaimed row is looked up and settles sent, as Graph has it, not failed expired "may have delivered it"', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const id = await enqueue(
    t,
    { to: 'rcpt@example.com', subject: 'Hi', text: 'x' },
    { expiresAt: new Date(Date.now() + 3_600_000).toISOString() },
  )
  await interruptedSend(fake, id)
  await t.pool.query('update mailer.email_outbox set expires_at = now() where id = $1', [id])

  const row = await settledAfterTheCrash(fake, id)
  expect([row.status, row.last_error_code, row.send_started_at === null]).toEqual([
    'sent',
    null,
    true,
  ])
  expect(fake.accepted.filter((a) => a.outboxId === id)).toHaveLength(1)
})

test('an interrupted send reclaimed pending and left unclaimed past its expiresAt, lookups on: the expiry sweep leaves it to a claim, which looks it up and settles it sent, not failed expired "may have delivered it"', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const id = await enqueue(
    t,
    { to: 'rcpt@example.com', subject: 'Hi', text: 'x' },
    { expiresAt: new Date(Date.now() + 3_600_000).toISOString() },
  )
  await interruptedSend(fake, id)
  // A worker reclaims the ended lease (the row pending again, its mark kept) and stops before any
  // claim takes it; its expiresAt passes meanwhile.
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  const { rows } = await reclaimExpired(t.db, { defaultMaxAttempts: 5 })
  expect(rows).toEqual([{ id, status: 'pending', ambiguous: true }])
  await t.pool.query('update mailer.email_outbox set expires_at = now() where id = $1', [id])

  // The next worker's first statement is a reclaim carrying the sweep, before its first claim.
  const after = worker(fake, 'after')
  await after.start()
  await after.events.waitFor(settledFor(id), 30_000)
  const row = await rowOf(t, id)
  expect([row.status, row.last_error_code, row.send_started_at === null]).toEqual([
    'sent',
    null,
    true,
  ])
  expect(fake.accepted.filter((a) => a.outboxId === id)).toHaveLength(1)
  expect((await attemptsOf(t, id, 'outcome, worker_id')).map((a) => a.outcome)).toEqual([
    'lease_expired',
    'sent',
  ])
})

test('expiresAt passed across a crash, lookups on, the message not in the mailbox past the grace: failed expired as not sent, its mark cleared', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const id = await enqueue(t, { to: 'rcpt@example.com', subject: 'Hi', text: 'x' })
  // A worker that started the send and died before it reached Graph: its lease over, the row past expiresAt.
  await diedMidSendPastExpiry(t, id)
  const row = await settledAfterTheCrash(fake, id)
  expect([row.status, row.last_error_code, row.last_error, row.send_started_at === null]).toEqual([
    'failed',
    'expired',
    'not sent before expiresAt',
    true,
  ])
  expect(fake.accepted.filter((a) => a.outboxId === id)).toHaveLength(0)
})

test('expiresAt passed across a crash, lookups on, the template removed: failed expired naming the interrupted send (nothing to look it up by), not as unrenderable', async () => {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  await t.pool.query(`insert into mailer.templates (name, subject, text_body, to_addresses)
                      values ('welcome', 'Hi {{name}}', 'x', '{"rcpt@example.com"}')`)
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, template, source_row, expires_at)
     values (null, 'welcome', '{"name": "Ada"}'::jsonb, now() + interval '1 hour') returning id`,
  )
  const id = rows[0]!.id
  await interruptedSend(fake, id)
  await t.pool.query(`delete from mailer.templates where name = 'welcome'`)
  await t.pool.query('update mailer.email_outbox set expires_at = now() where id = $1', [id])

  const row = await settledAfterTheCrash(fake, id)
  expect([row.status, row.last_error_code, row.last_error, row.send_started_at === null]).toEqual([
    'failed',
    'expired',
    'expiresAt passed; an interrupted send may have delivered it',
    false,
  ])
  expect(fake.accepted.filter((a) => a.outboxId === id)).toHaveLength(1)
})
