// A row retried after its interrupted send was held (ambiguous_send) that then ends unsent (expired, cancelled, failed) names that send: it may have gone once.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { cancelMatching } from '../../src/outbox/bulk-cancel.ts'
import { cancelOutboxRow } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { requeueOutboxRow } from '../../src/outbox/requeue.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const claim = () =>
  claimBatch(t.db, { limit: 1, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }).then(
    (c) => c.leases,
  )
const settleParams = { workerId: 'w1', defaultMaxAttempts: 3, throttleDeadlineSeconds: 86400 }
const settleOne = (id: string, token: string, settlement: Settlement) =>
  settleLeases(t.db, [{ id, token, settlement, startedAt: null }], settleParams)
const inOneHour = () => ({ expiresAt: new Date(Date.now() + 3600_000).toISOString() })
/** Its expiresAt passes now (database time), as if an hour had gone by. */
const expireNow = (id: string) =>
  t.pool.query(
    `update mailer.email_outbox set expires_at = now() - interval '1 second',
            send_at = least(send_at, now() - interval '2 seconds') where id = $1`,
    [id],
  )
const lastEntry = async (id: string) =>
  (
    await t.pool.query(
      `select outcome, error_code, error from mailer.email_attempts
        where outbox_id = $1 order by id desc limit 1`,
      [id],
    )
  ).rows[0]

/** Row `id` ended `status`, `code`, its lastError `words` and its last history entry's error `entry`. */
async function endsSaying(
  id: string,
  status: string,
  code: string | null,
  words: string | null,
  entry: string | null = words,
) {
  const row = await rowOf(t, id)
  expect({
    status: row.status,
    last_error_code: row.last_error_code,
    last_error: row.last_error,
  }).toEqual({
    status,
    last_error_code: code,
    last_error: words,
  })
  expect((await lastEntry(id)).error).toBe(entry)
}

/** How a failure's own words end on such a row (a throttle's ending's too: it quotes that message): as an unverified resend's failure names that send. */
const EARLIER = ' (an earlier interrupted send may have delivered it)'
/** The same words after our own (a reclaim's, a cancel's). */
const EARLIER_AFTER_WORDS = '; an earlier interrupted send may have delivered it'

/** The words an expiry writes on a row whose history holds an interrupted send nobody resolved. */
const MAY_HAVE_GONE =
  'not sent again before expiresAt; an earlier interrupted send may have delivered it'

/** Row `id`'s first send interrupted (its worker stopped mid-send, reclaimed), then claimed again: that lease. */
async function interruptedThenClaimed(id: string) {
  const [first] = await claim()
  await startSends(t.db, [first!])
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
  const [again] = await claim()
  expect(again?.ambiguous).toBe(true)
  return again!
}

/**
 * A row whose first send was interrupted, held for review (AMBIGUOUS_SEND_POLICY=hold, no lookup:
 * failed ambiguous_send, its mark cleared, as interrupted-send.ts settles it) and retried through
 * the API (requeue.ts: it is sent, not looked up), now pending again.
 */
async function heldThenRetried(options: Record<string, unknown> = inOneHour()) {
  const id = await enqueue(t, undefined, options)
  const again = await interruptedThenClaimed(id)
  await settleOne(id, again.token, {
    kind: 'failed',
    code: 'ambiguous_send',
    message:
      'an earlier interrupted send may have delivered it; held for review (retry it to send)',
  })
  expect(await rowOf(t, id)).toMatchObject({
    status: 'failed',
    last_error_code: 'ambiguous_send',
    send_started_at: null,
  })
  expect(await requeueOutboxRow(t.db, id, null)).not.toBeNull()
  return id
}

/** Row `id` claimed, sent again and answered for sure (500): a counted retry. */
async function sentAgainAnswered500(id: string) {
  const [lease] = await claim()
  expect(lease?.id).toBe(id)
  await startSends(t.db, [lease!])
  await settleOne(id, lease!.token, {
    kind: 'retry',
    code: 'http_500',
    message: 'http_500',
    delayMs: 0,
    throttled: false,
    ambiguous: false,
  })
}

describe('a row retried after its interrupted send was held, then expired', () => {
  test('failed by the expiry sweep, it says that earlier send may have delivered it', async () => {
    const id = await heldThenRetried()
    await expireNow(id)
    const r = await reclaimExpired(t.db, {
      defaultMaxAttempts: 3,
      sweep: { workerId: 'w1', limit: 500 },
    })
    expect(r.swept.map((s) => s.id)).toEqual([id])
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      last_error_code: 'expired',
      last_error: MAY_HAVE_GONE,
    })
    expect(await lastEntry(id)).toEqual({
      outcome: 'expired',
      error_code: 'expired',
      error: MAY_HAVE_GONE,
    })
  })

  test('found expired by a claim, it says so too', async () => {
    const id = await heldThenRetried()
    await expireNow(id)
    const [lease] = await claim()
    expect(lease?.id).toBe(id)
    await settleOne(id, lease!.token, { kind: 'expired' })
    await endsSaying(id, 'failed', 'expired', MAY_HAVE_GONE)
  })

  test('a row whose history holds no such send still reads not sent', async () => {
    const id = await enqueue(t, undefined, inOneHour())
    await expireNow(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep: { workerId: 'w1', limit: 500 } })
    expect(await rowOf(t, id)).toMatchObject({ last_error: 'not sent before expiresAt' })
  })
})

describe('a row retried after its interrupted send was held, then cancelled', () => {
  const CANCELLED_MAY_HAVE_GONE =
    'cancelled before the send started; an earlier interrupted send may have delivered it'

  test('by its worker (the cancel recorded while it held the row), it names that earlier send', async () => {
    const id = await heldThenRetried()
    const [lease] = await claim()
    expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'sending' })
    await settleOne(id, lease!.token, { kind: 'cancelled' })
    await endsSaying(id, 'cancelled', 'cancelled', CANCELLED_MAY_HAVE_GONE)
  })

  test('by the expiry sweep (its cancel recorded, the row pending), so does it', async () => {
    const id = await heldThenRetried()
    // As the sweep finds a row whose cancel was accepted while a worker held it, given back
    // pending (expiry-sweep.ts): a recorded cancel wins over its expiry.
    await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
      id,
    ])
    await expireNow(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep: { workerId: 'w1', limit: 500 } })
    expect(await rowOf(t, id)).toMatchObject({
      status: 'cancelled',
      last_error: CANCELLED_MAY_HAVE_GONE,
    })
  })
})

describe('a row retried after its held send, then cancelled through the API while pending', () => {
  /** heldThenRetried, its next send answered for sure (500), pending again for its next attempt. */
  async function retriedAfterA500() {
    const id = await heldThenRetried()
    await sentAgainAnswered500(id)
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending', last_error: 'http_500' })
    return id
  }
  const CANCELLED_HERE = `cancelled through the API before it was claimed${EARLIER_AFTER_WORDS}`

  test('sent again and answered 500, cancelled by its id, it names that earlier send', async () => {
    const id = await retriedAfterA500()
    expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'cancelled' })
    await endsSaying(id, 'cancelled', 'http_500', `http_500${EARLIER}`, CANCELLED_HERE)
  })

  test('sent again and answered 500, cancelled by a bulk cancel, so does it; a row with no such send keeps its words', async () => {
    const id = await retriedAfterA500()
    const plain = await enqueue(t, undefined, inOneHour())
    const r = await cancelMatching(t.db, { ids: [id, plain] }, null, { limit: 10 })
    expect(r.cancelled).toBe(2)
    await endsSaying(id, 'cancelled', 'http_500', `http_500${EARLIER}`, CANCELLED_HERE)
    await endsSaying(
      plain,
      'cancelled',
      null,
      null,
      'cancelled through the API before it was claimed',
    )
  })

  test("given back for a pacing turn, our own words, cancelled: the earlier send follows them after '; '", async () => {
    const id = await heldThenRetried()
    const [lease] = await claim()
    expect(lease?.id).toBe(id)
    // As paused-give-back.ts settles a row the gate turned away for its pacing turn: uncounted.
    const paced =
      'not sent yet: its sender mailbox sends at MAILBOX_RATE_PER_MINUTE; due at the turn reserved for it'
    await settleOne(id, lease!.token, {
      kind: 'retry',
      code: 'mailbox_paced',
      message: paced,
      delayMs: 60_000,
      throttled: true,
      ambiguous: false,
    })
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending', last_error: paced })
    expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'cancelled' })
    await endsSaying(
      id,
      'cancelled',
      'mailbox_paced',
      `${paced}${EARLIER_AFTER_WORDS}`,
      CANCELLED_HERE,
    )
  })

  test('retried again after an ending that named it already, its words name it once', async () => {
    const id = await heldThenRetried()
    await expireNow(id)
    await reclaimExpired(t.db, { defaultMaxAttempts: 3, sweep: { workerId: 'w1', limit: 500 } })
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() + interval '1 hour' where id = $1`,
      [id],
    )
    expect(await requeueOutboxRow(t.db, id, null)).not.toBeNull()
    expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'cancelled' })
    await endsSaying(id, 'cancelled', 'expired', MAY_HAVE_GONE, CANCELLED_HERE)
  })

  test('retried again after a failure an earlier release worded (history-kind.ts OLD_EARLIER), cancelled by its id or in bulk: its words name that send once, as that release wrote them', async () => {
    // As a release before may-have-delivered.ts failed such a row (a refusal, its template gone,
    // out of attempts each answered for sure), then retried through the API by this one.
    const OLD_WORDS =
      'template "welcome" not found (an earlier send was interrupted and may have delivered it)'
    const failedByAnEarlierRelease = async () => {
      const id = await heldThenRetried()
      const [lease] = await claim()
      await settleOne(id, lease!.token, {
        kind: 'failed',
        code: 'template_not_found',
        message: 'template "welcome" not found',
      })
      await t.pool.query('update mailer.email_outbox set last_error = $2 where id = $1', [
        id,
        OLD_WORDS,
      ])
      expect(await requeueOutboxRow(t.db, id, null)).not.toBeNull()
      return id
    }
    const one = await failedByAnEarlierRelease()
    expect(await cancelOutboxRow(t.db, one, null)).toMatchObject({ status: 'cancelled' })
    await endsSaying(one, 'cancelled', 'template_not_found', OLD_WORDS, CANCELLED_HERE)
    const bulk = await failedByAnEarlierRelease()
    expect(await cancelMatching(t.db, { ids: [bulk] }, null, { limit: 10 })).toMatchObject({
      cancelled: 1,
    })
    await endsSaying(bulk, 'cancelled', 'template_not_found', OLD_WORDS, CANCELLED_HERE)
  })
})

test('a row retried after its held send, cancelled while claimed and reclaimed after its worker stopped, names that earlier send', async () => {
  const id = await heldThenRetried()
  await claim()
  expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'sending' })
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
  await endsSaying(
    id,
    'cancelled',
    'cancelled',
    'cancelled before the send started (the worker holding the lease stopped); an earlier interrupted send may have delivered it',
  )
})

test('a row retried after its held send that then fails for good unsent (its template gone) names that earlier send', async () => {
  const id = await heldThenRetried()
  const [lease] = await claim()
  await settleOne(id, lease!.token, {
    kind: 'failed',
    code: 'template_not_found',
    message: 'template "welcome" not found',
  })
  await endsSaying(id, 'failed', 'template_not_found', `template "welcome" not found${EARLIER}`)
})

test('a row retried after its held send that then runs out of attempts, each send answered for sure, names that earlier send', async () => {
  const id = await heldThenRetried()
  await t.pool.query('update mailer.email_outbox set max_attempts = 1 where id = $1', [id])
  await sentAgainAnswered500(id)
  await endsSaying(id, 'failed', 'http_500', `attempts exhausted; last error: http_500${EARLIER}`)
})

describe('a row retried after its held send, then ended on its last attempt', () => {
  /** heldThenRetried, its next claim its last attempt (max_attempts 1), that claim's lease. */
  async function onItsLastAttempt(options?: Record<string, unknown>) {
    const id = await heldThenRetried(options)
    await t.pool.query('update mailer.email_outbox set max_attempts = 1 where id = $1', [id])
    const [lease] = await claim()
    expect(lease?.id).toBe(id)
    return { id, lease: lease! }
  }
  const reclaimedAfterItsWorkerStopped = async (id: string, lookups = false) => {
    await t.pool.query(
      `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
      [id],
    )
    await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups })
  }
  /** onItsLastAttempt, its send then interrupted (`code`): with lookups on (`lookUpFirst`), left to be looked up. */
  async function lastSendInterrupted(code: string, lookUpFirst: boolean) {
    const { id, lease } = await onItsLastAttempt()
    await startSends(t.db, [lease])
    await settleOne(id, lease.token, {
      kind: 'retry',
      code,
      message: code,
      delayMs: 0,
      throttled: false,
      ambiguous: true,
      ...(lookUpFirst && { lookUpFirst }),
    })
    return id
  }
  /** Row `id`, past its attempts, claimed only to look its send up. */
  async function claimedToLookUp(id: string) {
    const [lookup] = await claim()
    expect(lookup).toMatchObject({ id, pastAttempts: true })
    return lookup!
  }
  /** A 429's retry given back uncounted, as the transport answers it. */
  const throttled = (delayMs: number): Settlement => ({
    kind: 'retry',
    code: 'http_429',
    message: 'throttled (429)',
    delayMs,
    throttled: true,
    ambiguous: false,
  })

  test('reclaimed after its worker stopped before sending, it names that earlier send', async () => {
    const { id } = await onItsLastAttempt()
    await reclaimedAfterItsWorkerStopped(id)
    await endsSaying(
      id,
      'failed',
      'lease_expired',
      `the worker holding the lease stopped before sending${EARLIER_AFTER_WORDS}`,
    )
  })

  test('reclaimed after its worker stopped during the send (lookups off), it names that earlier send too', async () => {
    const { id, lease } = await onItsLastAttempt()
    await startSends(t.db, [lease])
    await reclaimedAfterItsWorkerStopped(id)
    await endsSaying(
      id,
      'failed',
      'lease_expired',
      `the worker holding the lease stopped during the send; outcome unknown${EARLIER_AFTER_WORDS}`,
    )
  })

  test('throttled out (a 429 past the throttle deadline), it names that earlier send', async () => {
    const { id, lease } = await onItsLastAttempt()
    await startSends(t.db, [lease])
    await settleLeases(
      t.db,
      [{ id, token: lease.token, settlement: throttled(1000), startedAt: null }],
      {
        ...settleParams,
        throttleDeadlineSeconds: 0,
      },
    )
    await endsSaying(
      id,
      'failed',
      'throttled',
      `still throttled at the throttle deadline: throttled (429)${EARLIER}`,
    )
  })

  test('still throttled at its expiresAt, it names that earlier send', async () => {
    const { id, lease } = await onItsLastAttempt()
    await startSends(t.db, [lease])
    await settleOne(id, lease.token, throttled(2 * 3600_000))
    await endsSaying(
      id,
      'failed',
      'expired',
      `still throttled at its expiresAt: throttled (429)${EARLIER}`,
    )
  })

  /** How an out-of-attempts error ends whose last send may have delivered the row, after an earlier one that may have too. */
  const BOTH = ' (that send, or an earlier interrupted one, may have delivered it)'

  test('its last send interrupted (a stop past its grace aborted it, lookups off), it names that send and the earlier one', async () => {
    const id = await lastSendInterrupted('aborted', false)
    await endsSaying(id, 'failed', 'aborted', `attempts exhausted; last error: aborted${BOTH}`)
  })

  test("its last send interrupted (lookups on), its lookup's workers stopping until it fails, it names that earlier send", async () => {
    const id = await lastSendInterrupted('timeout', true)
    // LOOKUP_STOPS_IN_A_ROW (reclaim-decisions.ts): the third stop of its lookup fails it.
    for (let stop = 1; stop <= 3; stop++) {
      await claimedToLookUp(id)
      await reclaimedAfterItsWorkerStopped(id, true)
    }
    await endsSaying(
      id,
      'failed',
      'lease_expired',
      `the worker looking up its interrupted send stopped; outcome unknown${EARLIER_AFTER_WORDS}`,
    )
  })

  test('its last send interrupted and looked up past its attempts to no answer (lookups on), it names that send and the earlier one', async () => {
    const id = await lastSendInterrupted('timeout', true)
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending' })
    const past = await claimedToLookUp(id)
    // Its lookup could not tell (no Mail.Read): out of attempts, the mark kept (interrupted-send.ts).
    const lookedUp = { id, token: past.token, settlement: { kind: 'exhausted' } as const }
    await settleLeases(
      t.db,
      [{ ...lookedUp, ambiguous: true, uncounted: true, startedAt: null }],
      settleParams,
    )
    await endsSaying(id, 'failed', 'timeout', `attempts exhausted; last error: timeout${BOTH}`)
  })
})
