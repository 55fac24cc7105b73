// The lookup of a send a crash interrupted trusts "not found" a grace after that send's own deadline (noted with its start), else a grace after the reclaim.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { cutAtFirstSend } from '../support/cut-at-first-send.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()

/**
 * Worker `crashed` (the defaults: a 60 s lease, a 30 s request timeout, a 30 s grace) loses its
 * database as Graph takes its send; database time then steps on: the send began 45 s ago (a
 * heartbeat 15 s before it had left the lease 60 s) and its lease ended a second ago, so its own
 * request ended 15 s ago, at its deadline. `forget` runs on the registry before another worker
 * reclaims the row and looks it up (Graph has not filed the message: "not found", too early).
 * Returns where the moment (database time) the lookup will trust "not found", the row's due time,
 * falls: past the send's deadline and the grace, past a grace after the reclaim.
 */
async function crashThenLookUp(forget?: string) {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const { handle, proxy, close } = await cutAtFirstSend(t, fake, { fileLate: true })
  closing.push(close)
  const defaults = { mailFrom: 'sender@example.com', timeoutSeconds: 30, leaseSeconds: 60 }
  const crashed = graphWorker(t, fake, {
    ...defaults,
    workerId: 'crashed',
    graceSeconds: 30,
    handle,
  })
  engines.push(crashed)
  const id = await enqueue(t)
  await crashed.start()
  const accepted = () => fake.accepted.filter((a) => a.outboxId === id).length
  await pollUntil(async () => (accepted() === 1 ? true : undefined), 20_000)
  await t.pool.query(
    `update mailer.email_outbox
        set send_started_at = send_started_at - interval '45 seconds',
            send_deadline_at = send_deadline_at - interval '45 seconds',
            lease_expires_at = now() - interval '1 second'
      where id = $1`,
    [id],
  )
  // Its registry entry, written before the send, steps back with it.
  await t.pool.query(`update mailer.workers set started_at = started_at - interval '45 seconds'`)
  if (forget) await t.pool.query(forget)
  const other = graphWorker(t, fake, { ...defaults, workerId: 'reclaimer', graceSeconds: 30 })
  engines.push(other)
  await other.start()
  await other.events.waitFor(
    (e) =>
      e.type === 'settled' &&
      e.id === id &&
      (e.outcome === 'sent' || e.code === 'lookup_too_early'),
    30_000,
  )
  expect(accepted()).toBe(1)
  const { rows } = await t.pool.query(
    `select o.send_at >= o.send_started_at + interval '60 seconds' as "afterDeadlineAndGrace",
            o.send_at >= h.finished_at + interval '30 seconds' as "aGraceAfterTheReclaim"
       from mailer.email_outbox o join mailer.email_attempts h on h.outbox_id = o.id
      where o.id = $1 and h.outcome = 'lease_expired'`,
    [id],
  )
  await proxy.up()
  return rows
}

test('a crash with the defaults: the reclaim’s lookup trusts "not found" a grace after the send’s own deadline (start + the crashed worker’s 30 s), not a grace after the reclaim', async () => {
  expect(await crashThenLookUp()).toEqual([
    { afterDeadlineAndGrace: true, aGraceAfterTheReclaim: false },
  ])
})

test('the send’s deadline not noted (an older binary’s start): a grace after the reclaim, as before', async () => {
  expect(await crashThenLookUp(`update mailer.email_outbox set send_deadline_at = null`)).toEqual([
    { afterDeadlineAndGrace: true, aGraceAfterTheReclaim: true },
  ])
})

test('a deadline no later than the start (an older binary’s start left an earlier send’s): not that send’s, a grace after the reclaim', async () => {
  expect(
    await crashThenLookUp(
      `update mailer.email_outbox set send_deadline_at = send_started_at - interval '1 second'`,
    ),
  ).toEqual([{ afterDeadlineAndGrace: true, aGraceAfterTheReclaim: true }])
})

test('the crashed worker’s registry entry gone (pruned, silent for a day): the deadline noted on its row counts, not a grace after the reclaim', async () => {
  expect(await crashThenLookUp(`delete from mailer.workers where id = 'crashed'`)).toEqual([
    { afterDeadlineAndGrace: true, aGraceAfterTheReclaim: false },
  ])
})

test('the crashed worker’s entry lost and its lease key drawn by a worker with a shorter timeout after the send began (the reclaim names that worker): the lookup counts from the send’s own deadline, and sends once', async () => {
  // 'redrew' registers after the send began, under the key the crashed send's row still names.
  expect(
    await crashThenLookUp(
      `with gone as (delete from mailer.workers where id = 'crashed' returning lease_key)
       insert into mailer.workers (id, host, pid, version, lease_key, request_timeout_seconds)
       select 'redrew', 'h', 1, 'v', lease_key, 5 from gone`,
    ),
  ).toEqual([{ afterDeadlineAndGrace: true, aGraceAfterTheReclaim: false }])
})

test('the crashed send began after its lease key was drawn by a worker with a shorter timeout (the row claimed under the old key before its worker’s next beat): the lookup does not count from the other’s deadline, and sends once', async () => {
  // 'redrew' holds the key the row names since before the send began; the sender's own entry lost.
  expect(
    await crashThenLookUp(
      `with gone as (delete from mailer.workers where id = 'crashed' returning lease_key)
       insert into mailer.workers (id, host, pid, version, lease_key, request_timeout_seconds, started_at)
       select 'redrew', 'h', 1, 'v', lease_key, 5,
              (select send_started_at - interval '1 second' from mailer.email_outbox) from gone`,
    ),
  ).toEqual([{ afterDeadlineAndGrace: true, aGraceAfterTheReclaim: false }])
})
