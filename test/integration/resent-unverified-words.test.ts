// Which send a row's failure names as the one that may have delivered it, after lookups that could not tell: built from the histories Graph can give.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { requeueOutboxRow } from '../../src/outbox/requeue.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import { useTestDb } from '../support/db.ts'
import { drainedToEnd } from '../support/drained-row.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { type FakeGraph, type GraphFault, startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'

setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()

/** A send Graph never answered (and never took): the worker's deadline ends it, interrupted. */
const HANG: GraphFault = 'hang'
/** A send answered for sure: it delivered nothing. */
const ERROR_500: GraphFault = {
  status: 500,
  code: 'InternalServerError',
  message: 'Internal Server Error',
}
/** Graph's answer to a lookup without Mail.Read: the lookup cannot tell (the policy resends). */
const NO_MAIL_READ = { status: 403, code: 'ErrorAccessDenied', message: 'Access is denied.' }
const TIMED_OUT = 'Graph request exceeded its deadline'
/** The words naming the send that may have delivered the row: the earlier interrupted one, both, that send. */
const EARLIER = ' (an earlier interrupted send may have delivered it)'
const BOTH = ' (that send, or an earlier interrupted one, may have delivered it)'
const THAT = ' (that send may have delivered it)'
/** EARLIER as every release before may-have-delivered.ts wrote it (history-kind.ts OLD_EARLIER), kind or none. */
const PREVIOUS = ' (an earlier send was interrupted and may have delivered it)'

/**
 * A row of `maxAttempts` whose sends meet `sends` in turn, drained by a worker with lookups on
 * (policy resend) to its final state; each lookup made once `unreadAfter` sends were asked is
 * refused (no Mail.Read), those before are answered (nothing found: no send was taken).
 */
async function drained(sends: GraphFault[], maxAttempts: number, unreadAfter: number) {
  const fake: FakeGraph = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  const asked = () => fake.requests.filter((q) => q.kind === 'sendMail').length
  fake.setFaults({
    sendMail: sends,
    pickLookup: () => (asked() >= unreadAfter ? NO_MAIL_READ : undefined),
  })
  const engine = graphWorker(t, fake, {
    workerId: 'w',
    mailFrom: 'sender@example.com',
    graceSeconds: 1,
    timeoutSeconds: 1,
    retryBaseSeconds: 0.2,
  })
  engines.push(engine)
  const id = await enqueue(t, undefined, { maxAttempts })
  // 1 s send deadlines, a 1 s grace and 0.2 s retries each time.
  const { row, history } = await drainedToEnd(
    t,
    engine,
    id,
    45_000,
    'attempt, outcome, error_code, error, kind',
  )
  return {
    end: { status: row.status, error: row.last_error, marked: row.send_started_at !== null },
    history,
    sends: asked(),
  }
}

test('two resends in a row (the first answered 500, the second interrupted), no lookup able to tell: the failure names both the last send and the first interrupted one', async () => {
  const { end, history, sends } = await drained([HANG, ERROR_500, HANG], 3, 0)
  expect(sends).toBe(3)
  // Each resend's retry names the send that may have delivered it, as its failure would, and its
  // kind says so (what the failure reads back, not the words).
  expect(history.map((h) => [h.attempt, h.outcome, h.error_code, h.error, h.kind])).toEqual([
    [1, 'retry', 'timeout', TIMED_OUT, 'attempt'],
    [2, 'retry', 'InternalServerError', `Internal Server Error${EARLIER}`, 'resent'],
    [3, 'retry', 'timeout', `${TIMED_OUT}${BOTH}`, 'resent_interrupted'],
    [3, 'failed', 'timeout', `attempts exhausted; last error: ${TIMED_OUT}${BOTH}`, 'unresolved'],
  ])
  expect(end).toEqual({
    status: 'failed',
    error: `attempts exhausted; last error: ${TIMED_OUT}${BOTH}`,
    marked: true,
  })
})

test('an interrupted send looked up and not found (sent again, interrupted too), then a lookup that cannot tell: the failure names the last send alone', async () => {
  const { end, history, sends } = await drained([HANG, HANG], 2, 2)
  expect(sends).toBe(2)
  // The second send was no resend: the lookup before it found nothing past the grace.
  expect(history.map((h) => [h.attempt, h.outcome, h.error_code, h.error])).toEqual([
    [1, 'retry', 'timeout', TIMED_OUT],
    [2, 'retry', 'timeout', TIMED_OUT],
    [2, 'failed', 'timeout', `attempts exhausted; last error: ${TIMED_OUT}${THAT}`],
  ])
  expect(end).toEqual({
    status: 'failed',
    error: `attempts exhausted; last error: ${TIMED_OUT}${THAT}`,
    marked: true,
  })
})

const claimOne = async () =>
  (await claimBatch(t.db, { limit: 1, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }))
    .leases

/**
 * A history entry: attempt, outcome, code, error, for a send's the HTTP status it was answered,
 * and its kind (none: an entry of a binary before 0189, read by its words).
 */
type Entry = [number, string, string, string, (number | null)?, string?]

/**
 * A row of two attempts, `attempts` of them counted, keeping an interrupted send's mark, whose
 * history holds `entries` (a send's with its start).
 */
async function markedRow(attempts: number, entries: Entry[]) {
  const id = await enqueue(t, undefined, { maxAttempts: 2 })
  await t.pool.query(
    `update mailer.email_outbox set attempts = $2, send_started_at = now() - interval '1 minute' where id = $1`,
    [id, attempts],
  )
  for (const [attempt, outcome, code, error, status, kind] of entries) {
    await t.pool.query(
      `insert into mailer.email_attempts
              (outbox_id, attempt, worker_id, outcome, error_code, error, http_status, started_at, kind)
       values ($1, $2, 'w0', $3, $4, $5, $6, case when $6::int is not null then now() - interval '2 minutes' end, $7)`,
      [id, attempt, outcome, code, error, status ?? null, kind ?? null],
    )
  }
  return id
}

/**
 * A row of two attempts whose first ended as `first` (a history entry: outcome, code, error),
 * whose second send's worker stopped during it (reclaimed, lookups on: left to be looked up), and
 * whose lookup then could not tell: its failure's last error.
 */
async function stoppedDuringLastSend(...before: Entry[]): Promise<string> {
  const id = await markedRow(1, before)
  await stoppedDuringSecondSend(id, true)
  return lookedUp(id, { kind: 'exhausted' })
}

/** Row `id` (markedRow) claimed for its second and last attempt, whose worker stopped during its send: reclaimed. */
async function stoppedDuringSecondSend(id: string, lookups: boolean) {
  const [send] = await claimOne()
  expect(send?.attempt).toBe(2)
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now(), lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups })
}

/** Row `id`, out of attempts and left to be looked up, claimed so and settled `settlement`: its last error. */
async function lookedUp(id: string, settlement: Settlement): Promise<string> {
  const [lookup] = await claimOne()
  expect(lookup?.pastAttempts).toBe(true)
  await settleLeases(
    t.db,
    [{ id, token: lookup!.token, settlement, ambiguous: true, uncounted: true, startedAt: null }],
    { workerId: 'w', defaultMaxAttempts: 3, throttleDeadlineSeconds: 86_400 },
  )
  return (await rowOf(t, id)).last_error
}

test('a last send whose worker stopped during it (which names no resend) is taken for a resend when the send before it was interrupted or named an earlier one, not after a send answered for sure', async () => {
  const STOPPED =
    'attempts exhausted; last error: the worker holding the lease stopped during the send; outcome unknown'
  const answered500: Entry = [1, 'retry', 'InternalServerError', 'Internal Server Error', 500]
  expect([
    await stoppedDuringLastSend([1, 'retry', 'timeout', TIMED_OUT]),
    // An older binary's entry (no kind), in its words.
    await stoppedDuringLastSend([
      1,
      'retry',
      'InternalServerError',
      `Internal Server Error${PREVIOUS}`,
      500,
    ]),
    // A gateway's 504 (Graph may have taken it) is given back uncounted: a throttle, the send's still.
    await stoppedDuringLastSend(answered500, [
      2,
      'throttled',
      'GatewayTimeout',
      'Gateway Timeout',
      504,
    ]),
    await stoppedDuringLastSend(answered500),
  ]).toEqual([`${STOPPED}${BOTH}`, `${STOPPED}${BOTH}`, `${STOPPED}${BOTH}`, `${STOPPED}${THAT}`])
})

test("an entry with a kind is read by it, not by its words: a resend's retry worded otherwise, a provider's text in our words", async () => {
  const STOPPED =
    'attempts exhausted; last error: the worker holding the lease stopped during the send; outcome unknown'
  expect([
    await stoppedDuringLastSend([
      1,
      'retry',
      'InternalServerError',
      'Internal Server Error',
      500,
      'resent',
    ]),
    await stoppedDuringLastSend([
      1,
      'retry',
      'InternalServerError',
      `Internal Server Error${EARLIER}`,
      500,
      'attempt',
    ]),
  ]).toEqual([`${STOPPED}${BOTH}`, `${STOPPED}${THAT}`])
})

test('an older binary\'s cancel or lookup refusal that left an interrupted send unresolved (no kind; its words name no "may have delivered it") is read as one, as this binary\'s entry (unresolved) is', async () => {
  const STOPPED =
    'attempts exhausted; last error: the worker holding the lease stopped during the send; outcome unknown'
  // The words every release since cancels looked interrupted sends up has written (cancel-wins.ts
  // CANCELLED_UNRESOLVED, and the reclaim's CANCELLED_LOOKUP_STOPPED): a row cancelled so before
  // the upgrade to 0189 (or by a machine of the release before it, during the deploy), then
  // retried, sent again and its worker stopped during that send.
  const cancelled = (error: string, kind?: string): Entry => [
    1,
    'cancelled',
    'cancelled',
    error,
    null,
    kind,
  ]
  // Those words until outcome-unknown.ts made "outcome unknown" one (history-kind.ts
  // OLD_UNKNOWN_WHETHER_DELIVERED): no kind before 0189, kind unresolved since.
  const UNRESOLVED =
    'cancelled; an interrupted send could not be looked up: whether it delivered the message is unknown'
  const LOOKUP_STOPPED =
    'cancelled; an interrupted send could not be looked up (the worker looking it up stopped): whether it delivered the message is unknown'
  expect([
    await stoppedDuringLastSend(cancelled(UNRESOLVED)),
    await stoppedDuringLastSend(cancelled(LOOKUP_STOPPED)),
    await stoppedDuringLastSend(cancelled(UNRESOLVED, 'unresolved')),
    await stoppedDuringLastSend(cancelled(LOOKUP_STOPPED, 'unresolved')),
    // This binary's words, read by their kind.
    await stoppedDuringLastSend(
      cancelled(
        'cancelled; an interrupted send could not be looked up; outcome unknown',
        'unresolved',
      ),
    ),
    await stoppedDuringLastSend(
      cancelled(
        'cancelled; an interrupted send could not be looked up (the worker looking it up stopped); outcome unknown',
        'unresolved',
      ),
    ),
    // Failed as its lookup was refused (404: the mailbox does not exist), its mark kept
    // (interrupted-send.ts), as every release since such a refusal failed the row words it.
    await stoppedDuringLastSend([
      1,
      'failed',
      'ErrorInvalidUser',
      'the mailbox lookup of an interrupted send was refused: The requested user is invalid.',
    ]),
    // Looked up and not found: that earlier send delivered nothing.
    await stoppedDuringLastSend(
      cancelled(
        'cancelled; an interrupted send was looked up in the mailbox and not found: not sent',
      ),
    ),
  ]).toEqual([
    `${STOPPED}${BOTH}`,
    `${STOPPED}${BOTH}`,
    `${STOPPED}${BOTH}`,
    `${STOPPED}${BOTH}`,
    `${STOPPED}${BOTH}`,
    `${STOPPED}${BOTH}`,
    `${STOPPED}${BOTH}`,
    `${STOPPED}${THAT}`,
  ])
})

test('a lookup refused for good (404: the mailbox does not exist) names the send that may have delivered the row: that send, the earlier interrupted one after a resend answered for sure, both after a resend interrupted too or a hold retried', async () => {
  const REFUSED =
    'the mailbox lookup of an interrupted send was refused: The requested user is invalid.'
  /** A row whose first attempt ended as `before`, its lookup at the next claim refused: its failure. */
  const refusedAfter = async (...before: Entry[]) => {
    const id = await markedRow(1, before)
    // The last attempt's code, as its settlement left it (earlier-interrupted.ts reads a row with one).
    await t.pool.query(`update mailer.email_outbox set last_error_code = 'timeout' where id = $1`, [
      id,
    ])
    const [lookup] = await claimOne()
    expect(lookup?.ambiguous).toBe(true)
    // As interrupted-send.ts settles a lookup Graph answered 404 for the row's own mailbox.
    const settlement: Settlement = {
      kind: 'failed',
      code: 'ErrorInvalidUser',
      message: REFUSED,
      ambiguous: true,
      lookupRefused: true,
    }
    await settleLeases(
      t.db,
      [{ id, token: lookup!.token, settlement, ambiguous: true, startedAt: null }],
      { workerId: 'w', defaultMaxAttempts: 3, throttleDeadlineSeconds: 86_400 },
    )
    const row = await rowOf(t, id)
    return [row.status, row.last_error, row.send_started_at !== null]
  }
  expect([
    await refusedAfter([1, 'retry', 'timeout', TIMED_OUT]),
    await refusedAfter([
      1,
      'retry',
      'InternalServerError',
      `Internal Server Error${EARLIER}`,
      500,
      'resent',
    ]),
    await refusedAfter([1, 'retry', 'timeout', `${TIMED_OUT}${BOTH}`, null, 'resent_interrupted']),
    // Held for review before (ambiguous_send, the mark cleared), retried, and interrupted again.
    await refusedAfter(
      [
        1,
        'failed',
        'ambiguous_send',
        'an earlier interrupted send may have delivered it; held for review (retry it to send)',
      ],
      [1, 'retry', 'timeout', TIMED_OUT],
    ),
  ]).toEqual([
    ['failed', `${REFUSED}${THAT}`, true],
    ['failed', `${REFUSED}${EARLIER}`, true],
    ['failed', `${REFUSED}${BOTH}`, true],
    ['failed', `${REFUSED}${BOTH}`, true],
  ])
})

test("a resend's retry that named both sends, then its lookup: the failure names them once when it cannot tell, and neither when it found nothing", async () => {
  const resent = () =>
    markedRow(2, [
      [1, 'retry', 'timeout', TIMED_OUT],
      [2, 'retry', 'timeout', `${TIMED_OUT}${BOTH}`],
    ])
  expect(await lookedUp(await resent(), { kind: 'exhausted' })).toBe(
    `attempts exhausted; last error: ${TIMED_OUT}${BOTH}`,
  )
  expect(await lookedUp(await resent(), { kind: 'exhausted', notSent: true })).toBe(
    `attempts exhausted; last error: ${TIMED_OUT} (that send was looked up and not found: not sent)`,
  )
})

test('a row cancelled with its interrupted send unresolved, retried, whose worker stopped during the resend: the failure names both sends', async () => {
  const id = await markedRow(1, [[1, 'retry', 'timeout', TIMED_OUT]])
  const [cancelled] = await claimOne()
  // Cancelled by its settlement with that send still unresolved (its lookup could not tell): as
  // the binary words and records it, the mark kept.
  await settleLeases(
    t.db,
    [
      {
        id,
        token: cancelled!.token,
        settlement: { kind: 'cancelled', ambiguous: true },
        ambiguous: true,
        startedAt: null,
      },
    ],
    { workerId: 'w', defaultMaxAttempts: 3, throttleDeadlineSeconds: 86_400 },
  )
  // Retried through the API (attempts back to 0), then on its last attempt but one.
  await requeueOutboxRow(t.db, id, null)
  await t.pool.query(`update mailer.email_outbox set attempts = 1 where id = $1`, [id])
  const [resend] = await claimOne()
  expect(resend?.ambiguous).toBe(true)
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now(), lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
  expect(await lookedUp(id, { kind: 'exhausted' })).toBe(
    `attempts exhausted; last error: the worker holding the lease stopped during the send; outcome unknown${BOTH}`,
  )
})

test('a resend whose worker stopped during it on the last attempt, lookups off: the reclaim that fails the row names the earlier interrupted send too, not after a send answered for sure', async () => {
  /** A row whose first attempt ended as `before`, its resend's worker stopped during it: its failure. */
  const reclaimedDuringResend = async (...before: Entry[]) => {
    const id = await markedRow(1, before)
    await stoppedDuringSecondSend(id, false)
    const row = await rowOf(t, id)
    return [row.status, row.last_error_code, row.last_error]
  }
  const STOPPED = 'the worker holding the lease stopped during the send; outcome unknown'
  expect([
    await reclaimedDuringResend([1, 'retry', 'timeout', TIMED_OUT]),
    await reclaimedDuringResend([
      1,
      'lease_expired',
      'lease_expired',
      STOPPED,
      null,
      'stopped_during_send',
    ]),
    await reclaimedDuringResend([1, 'retry', 'InternalServerError', 'Internal Server Error', 500]),
  ]).toEqual([
    ['failed', 'lease_expired', `${STOPPED}; an earlier interrupted send may have delivered it`],
    ['failed', 'lease_expired', `${STOPPED}; an earlier interrupted send may have delivered it`],
    ['failed', 'lease_expired', STOPPED],
  ])
})

test("a resend's retry stored in a previous release's words (its kind stored, or before 0189 none) reads as this release's: the failure after a lookup that cannot tell names the earlier send once, in this release's words", async () => {
  const exhaustedAfter = async (kind?: string) =>
    lookedUp(
      await markedRow(2, [
        [1, 'retry', 'timeout', TIMED_OUT],
        [2, 'retry', 'InternalServerError', `Internal Server Error${PREVIOUS}`, 500, kind],
      ]),
      { kind: 'exhausted' },
    )
  expect([await exhaustedAfter('resent'), await exhaustedAfter()]).toEqual([
    `attempts exhausted; last error: Internal Server Error${EARLIER}`,
    `attempts exhausted; last error: Internal Server Error${EARLIER}`,
  ])
})
