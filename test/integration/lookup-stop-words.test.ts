// A worker that stopped while its claim only looked a row's interrupted send up: its reclaim's words, and the failure read from the history after it, name the send that really happened.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { type Lease, lookupOnly } from '../../src/outbox/lease.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import { checkHistory } from '../faults/chaos/history-checks.ts'
import type { AttemptEntry, OutboxRow } from '../faults/chaos/outcome.ts'
import { interruptedSends } from '../faults/send-counts.ts'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, enqueue, rowOf } from '../support/engine.ts'

setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

const TIMED_OUT = 'Graph request exceeded its deadline'
const SEND_STOPPED = 'the worker holding the lease stopped during the send; outcome unknown'
const LOOKUP_STOPPED = 'the worker looking up its interrupted send stopped; outcome unknown'
const STOPPED_BEFORE_SENDING_AGAIN =
  "the worker holding the lease stopped before sending again; the earlier interrupted send's outcome unknown"
const THAT = ' (that send may have delivered it)'
const BOTH = ' (that send, or an earlier interrupted one, may have delivered it)'

const claimOne = async () =>
  (await claimBatch(t.db, { limit: 1, workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3 }))
    .leases[0]!

/** Row `id`'s lease ends unsettled (its worker stopped), and a worker's reclaim takes it back. */
async function stopped(id: string, lookups: boolean) {
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
  return (await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups })).rows
}

/**
 * A row of `maxAttempts`, `attempts` counted, whose last send (attempt `attempts`) timed out, its
 * mark kept; or, `gatewayTimeout`, whose send of attempt `attempts` + 1 a gateway's 504 gave back
 * uncounted (Graph may have taken it).
 */
async function interrupted(
  maxAttempts: number,
  attempts: number,
  shape = 'priority = priority',
  gatewayTimeout = false,
) {
  const id = await enqueue(t, undefined, {
    maxAttempts,
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  })
  await t.pool.query(
    `update mailer.email_outbox set attempts = $2, send_started_at = now() - interval '1 minute',
            send_at = now() - interval '2 seconds', ${shape} where id = $1`,
    [id, attempts],
  )
  const [attempt, outcome, code, error, status] = gatewayTimeout
    ? [attempts + 1, 'throttled', 'GatewayTimeout', 'Gateway Timeout', 504]
    : [attempts, 'retry', 'timeout', TIMED_OUT, null]
  await t.pool.query(
    `insert into mailer.email_attempts
            (outbox_id, attempt, worker_id, outcome, error_code, error, http_status, started_at, finished_at)
     values ($1, $2, 'w0', $3, $4, $5, $6, now() - interval '1 minute', now() - interval '30 seconds')`,
    [id, attempt, outcome, code, error, status],
  )
  return id
}

/**
 * The lease of a claim that only looked row `id`'s interrupted send up (or named it), settled
 * `kind` with its lookup unable to tell, uncounted as lease-outcome.ts settles such a claim.
 */
const settleUnresolved = (id: string, lease: Lease, kind: 'exhausted' | 'expired') =>
  settleLeases(
    t.db,
    [
      {
        id,
        token: lease.token,
        settlement: { kind },
        ambiguous: true,
        uncounted: lookupOnly(lease),
        startedAt: null,
      },
    ],
    { workerId: 'w', defaultMaxAttempts: 3, throttleDeadlineSeconds: 86_400 },
  )

/** Row `id`, out of attempts and left to be looked up, claimed so and its lookup unable to tell: its failure. */
async function lookupCannotTell(id: string) {
  const lookup = await claimOne()
  expect(lookup.pastAttempts).toBe(true)
  expect(lookupOnly(lookup)).toBe(true)
  await settleUnresolved(id, lookup, 'exhausted')
  return words(id)
}

/** Row `id`'s status, attempts and last error (code and words). */
async function words(id: string) {
  const row = await rowOf(t, id)
  return {
    status: row.status,
    attempts: row.attempts,
    code: row.last_error_code,
    error: row.last_error,
  }
}

/** words() of a row, attempt 1 counted, reclaimed `lease_expired` with `error`: pending. */
const reclaimedSo = (error: string) => ({
  status: 'pending',
  attempts: 1,
  code: 'lease_expired',
  error,
})

/** words() of a row failed with `attempts` counted, `code` and `error`. */
const failedSo = (attempts: number, code: string, error: string) => ({
  status: 'failed',
  attempts,
  code,
  error,
})

/** words() of a row, attempt 1 counted, failed out of attempts with `code` and `error`. */
const exhausted = (code: string, error: string) =>
  failedSo(1, code, `attempts exhausted; last error: ${error}`)

/** What the chaos soak's history check (`mode`, lookup by default) says of row `id` and its history. */
async function historyProblems(id: string, mode: 'lookup' | 'hold' = 'lookup') {
  const { rows } = await t.pool.query<OutboxRow>(
    `select id::text, status, attempts, coalesce(max_attempts, 3) as max_attempts, last_error_code,
            last_error, expires_at, sent_at, send_started_at, lease_owner, lease_token::text,
            lease_expires_at, false as rejected
       from mailer.email_outbox where id = $1`,
    [id],
  )
  const hist = (await attemptsOf(
    t,
    id,
    'outbox_id::text, attempt, worker_id, outcome, error_code, error, http_status, kind',
  )) as AttemptEntry[]
  const said: string[] = []
  checkHistory(mode, {
    r: rows[0]!,
    hist,
    retries: 0,
    cancelAsked: false,
    say: (what) => said.push(what),
  })
  return said
}

/**
 * How many sends of row `id` the chaos checker (send-counts.ts) counts as ones that may have
 * delivered it, given when sends reached Graph (`sendTimes`, ms: here the sends a test marks by hand).
 */
const possiblyDelivering = async (id: string, sendTimes: number[] = []) =>
  interruptedSends(
    (await attemptsOf(
      t,
      id,
      `outbox_id::text, attempt, worker_id, outcome, error_code, error, http_status, kind,
       started_at is not null as started, (extract(epoch from finished_at) * 1000)::float8 as finished_ms`,
    )) as AttemptEntry[],
    sendTimes,
  )

/** The kinds of row `id`'s history entries (sql/0189; null: written by hand, as an older binary would). */
const kinds = async (id: string) =>
  (await attemptsOf(t, id, 'kind')).map((h: { kind: string | null }) => h.kind)

const entries = async (id: string) =>
  (await attemptsOf(t, id, 'attempt, outcome, error_code, error')).map(
    (h: { attempt: number; outcome: string; error_code: string; error: string }) => [
      h.attempt,
      h.outcome,
      h.error_code,
      h.error,
    ],
  )

test("max 1, its send timed out; the lookup's worker stopped, the next lookup could not tell: failed naming the timed-out send, not the lookup's stop", async () => {
  const id = await interrupted(1, 1)
  expect(lookupOnly(await claimOne())).toBe(true)
  expect(await stopped(id, true)).toEqual([{ id, status: 'pending', ambiguous: true }])
  const waiting = await words(id)
  expect(await lookupCannotTell(id)).toEqual(exhausted('timeout', `${TIMED_OUT}${THAT}`))
  expect(await historyProblems(id)).toEqual([])
  // Pending meanwhile, its last error the lookup's stop, not a send's.
  expect(waiting).toEqual(reclaimedSo(LOOKUP_STOPPED))
  expect(await entries(id)).toEqual([
    [1, 'retry', 'timeout', TIMED_OUT],
    [1, 'lease_expired', 'lease_expired', LOOKUP_STOPPED],
    [1, 'failed', 'timeout', `attempts exhausted; last error: ${TIMED_OUT}${THAT}`],
  ])
  expect(await kinds(id)).toEqual([null, 'stopped_looking_up', 'unresolved'])
})

test('two lookups in a row whose workers stopped, then one that could not tell: failed naming the timed-out send', async () => {
  const id = await interrupted(1, 1)
  await claimOne()
  await stopped(id, true)
  await claimOne()
  expect(await stopped(id, true)).toEqual([{ id, status: 'pending', ambiguous: true }])
  // The chaos checker (send-counts.ts) counts the timed-out send alone, not the lookups' stops.
  expect(await possiblyDelivering(id)).toBe(1)
  expect(await lookupCannotTell(id)).toEqual(exhausted('timeout', `${TIMED_OUT}${THAT}`))
  expect(await historyProblems(id)).toEqual([])
})

test("a last send whose worker stopped during it, then its lookup's worker stopped: failed naming that send alone, not a resend", async () => {
  const id = await enqueue(t, undefined, { maxAttempts: 1 })
  const send = await claimOne()
  expect(lookupOnly(send)).toBe(false)
  await t.pool.query(`update mailer.email_outbox set send_started_at = now() where id = $1`, [id])
  // The send reached Graph then (as the chaos soak's fake records it)
  const sentAt = Date.now()
  await stopped(id, true)
  expect(lookupOnly(await claimOne())).toBe(true)
  await stopped(id, true)
  expect(await possiblyDelivering(id, [sentAt])).toBe(1)
  expect(await lookupCannotTell(id)).toEqual(exhausted('lease_expired', `${SEND_STOPPED}${THAT}`))
  expect(await historyProblems(id)).toEqual([])
  expect((await entries(id)).slice(0, 2)).toEqual([
    [1, 'lease_expired', 'lease_expired', SEND_STOPPED],
    [1, 'lease_expired', 'lease_expired', LOOKUP_STOPPED],
  ])
})

test('a claim noted lookup-only under which a send started all the same (a machine of a release before lookups past the attempts, in a rolling deploy), its worker stopped: a send, named with the one before it', async () => {
  const id = await interrupted(1, 1)
  const lease = await claimOne()
  expect(lookupOnly(lease)).toBe(true)
  // That release looks the send up and, not found past the grace, sends again: its start noted anew.
  await t.pool.query(`update mailer.email_outbox set send_started_at = now() where id = $1`, [id])
  // The send reached Graph then (as the chaos soak's fake records it)
  const sentAt = Date.now()
  await stopped(id, true)
  expect(await words(id)).toEqual(reclaimedSo(SEND_STOPPED))
  expect(await possiblyDelivering(id, [sentAt])).toBe(2)
  expect(await lookupCannotTell(id)).toEqual(exhausted('lease_expired', `${SEND_STOPPED}${BOTH}`))
  expect(await historyProblems(id)).toEqual([])
})

test("a lookup past the expiresAt whose worker stopped (lookups on and off): the reclaim names the lookup's stop, not a send, and the third stop in a row ends it expired naming the send", async () => {
  for (const lookups of [true, false]) {
    const id = await interrupted(3, 1, `expires_at = now() - interval '1 second'`)
    const lease = await claimOne()
    expect(lease).toMatchObject({ expired: true, ambiguous: true })
    expect(await stopped(id, lookups)).toEqual([{ id, status: 'pending', ambiguous: true }])
    expect(await words(id)).toEqual(reclaimedSo(LOOKUP_STOPPED))
    await claimOne()
    expect(await stopped(id, lookups)).toEqual([{ id, status: 'pending', ambiguous: true }])
    await claimOne()
    expect(await stopped(id, lookups)).toEqual([
      { id, status: 'failed', ambiguous: true, expired: true },
    ])
    expect(await entries(id)).toEqual([
      [1, 'retry', 'timeout', TIMED_OUT],
      [1, 'lease_expired', 'lease_expired', LOOKUP_STOPPED],
      [1, 'lease_expired', 'lease_expired', LOOKUP_STOPPED],
      [
        1,
        'expired',
        'expired',
        'expiresAt passed; an interrupted send may have delivered it (the worker looking it up stopped)',
      ],
    ])
    expect(await historyProblems(id)).toEqual([])
  }
})

test('the crash-loop rule counts every worker stop in a row, one before its send included: a lookup past the expiresAt after a stop before sending and one during the send ends expired at its first stop', async () => {
  const id = await enqueue(t, undefined, {
    maxAttempts: 5,
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  })
  // Attempt 1's worker stopped before it sent (rendering, its token); attempt 2's during the send.
  await claimOne()
  expect(await stopped(id, true)).toEqual([{ id, status: 'pending', ambiguous: false }])
  await claimOne()
  await t.pool.query(`update mailer.email_outbox set send_started_at = now() where id = $1`, [id])
  expect(await stopped(id, true)).toEqual([{ id, status: 'pending', ambiguous: true }])
  // Its expiresAt passes: the next claim only looks attempt 2's send up, and its worker stops too.
  await t.pool.query(
    `update mailer.email_outbox set expires_at = now() - interval '1 second',
            send_at = least(send_at, now() - interval '2 seconds') where id = $1`,
    [id],
  )
  expect(await claimOne()).toMatchObject({ expired: true, ambiguous: true })
  expect(await stopped(id, true)).toEqual([
    { id, status: 'failed', ambiguous: true, expired: true },
  ])
  expect(await entries(id)).toEqual([
    [1, 'lease_expired', 'lease_expired', 'the worker holding the lease stopped before sending'],
    [2, 'lease_expired', 'lease_expired', SEND_STOPPED],
    [
      2,
      'expired',
      'expired',
      'expiresAt passed; an interrupted send may have delivered it (the worker looking it up stopped)',
    ],
  ])
  expect(await kinds(id)).toEqual(['stopped_before_send', 'stopped_during_send', 'unresolved'])
  expect(await rowOf(t, id)).toMatchObject({ attempts: 2, status: 'failed' })
  expect(await historyProblems(id)).toEqual([])
})

test('lookups off, a counted claim of a row with an interrupted send whose worker stopped before it sent again: named a stop before sending, not during the send, to its failure on its last attempt', async () => {
  const id = await interrupted(3, 1)
  const resend = await claimOne()
  expect(lookupOnly(resend)).toBe(false)
  // Rendering or the token held it: no send started (the mark is still attempt 1's).
  expect(await stopped(id, false)).toEqual([{ id, status: 'pending', ambiguous: true }])
  expect(await words(id)).toEqual({ ...reclaimedSo(STOPPED_BEFORE_SENDING_AGAIN), attempts: 2 })
  await claimOne()
  expect(await stopped(id, false)).toEqual([{ id, status: 'failed', ambiguous: true }])
  expect(await words(id)).toEqual(failedSo(3, 'lease_expired', STOPPED_BEFORE_SENDING_AGAIN))
  expect(await entries(id)).toEqual([
    [1, 'retry', 'timeout', TIMED_OUT],
    [2, 'lease_expired', 'lease_expired', STOPPED_BEFORE_SENDING_AGAIN],
    [3, 'lease_expired', 'lease_expired', STOPPED_BEFORE_SENDING_AGAIN],
  ])
  expect(await kinds(id)).toEqual([null, 'stopped_before_resend', 'stopped_before_resend'])
  // The chaos checker counts attempt 1's send alone, as no sendMail came after it.
  expect(await possiblyDelivering(id)).toBe(1)
})

test("seed 843078098's row 73 (hold): a counted claim's stop before sending again, then the expiresAt passes: swept or claimed, the expiry numbers the row's count as with lookups on, and the checker counts attempts 1..2", async () => {
  const expiry = 'expiresAt passed; an interrupted send may have delivered it'
  for (const [lookups, ending] of [
    [false, 'swept'],
    [false, 'claimed'],
    [true, 'swept'],
    [true, 'claimed'],
  ] as const) {
    const id = await interrupted(6, 1)
    expect(lookupOnly(await claimOne())).toBe(false)
    // Lookups off, held (AMBIGUOUS_SEND_POLICY=hold) or resent; on, looking attempt 1's send up:
    // its worker stopped before it sent again.
    expect(await stopped(id, lookups)).toEqual([{ id, status: 'pending', ambiguous: true }])
    const stop = lookups ? LOOKUP_STOPPED : STOPPED_BEFORE_SENDING_AGAIN
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second' where id = $1`,
      [id],
    )
    if (ending === 'swept') {
      const { swept } = await reclaimExpired(t.db, {
        defaultMaxAttempts: 3,
        sweep: { workerId: 'sweeper', limit: 500, lookups, lookupPastExpirySeconds: 0 },
      })
      expect(swept.map((r) => [r.id, r.status, r.attempt])).toEqual([[id, 'failed', 2]])
    } else {
      // A claim past the expiresAt only names the interrupted send (or its lookup cannot tell):
      // it counts none.
      const named = await claimOne()
      expect(named).toMatchObject({ id, expired: true, ambiguous: true })
      expect(lookupOnly(named)).toBe(true)
      await settleUnresolved(id, named, 'expired')
    }
    expect(await words(id)).toEqual(failedSo(2, 'expired', expiry))
    // Attempt 2 (the counted claim that sent nothing) is the row's last: the expiry, which counts
    // none, numbers it, the lookup's stop with lookups on as the stop before sending again off.
    expect(await entries(id)).toEqual([
      [1, 'retry', 'timeout', TIMED_OUT],
      [2, 'lease_expired', 'lease_expired', stop],
      [2, 'expired', 'expired', expiry],
    ])
    expect(await historyProblems(id, 'hold')).toEqual([])
    expect(await possiblyDelivering(id)).toBe(1)
  }
})

test("a cancel's lookup whose worker stopped: its entry names the lookup's stop and the cancel, no send", async () => {
  const id = await interrupted(2, 1, 'cancel_requested_at = now()')
  expect(lookupOnly(await claimOne())).toBe(true)
  expect(await stopped(id, true)).toEqual([{ id, status: 'pending', ambiguous: true }])
  expect(await entries(id)).toEqual([
    [1, 'retry', 'timeout', TIMED_OUT],
    [
      1,
      'lease_expired',
      'lease_expired',
      'the worker looking up its interrupted send stopped; its cancel stands',
    ],
  ])
})

test('a counted claim of a row whose send was interrupted, its worker stopped before it sent again (lookups on: looking that send up): the failure after it names that send', async () => {
  const id = await interrupted(2, 1)
  const lease = await claimOne()
  expect(lease).toMatchObject({ attempt: 2, ambiguous: true })
  expect(lookupOnly(lease)).toBe(false)
  await stopped(id, true)
  // Counted (the claim's attempt), but no send: its entry is no send's.
  expect(await words(id)).toEqual({ ...reclaimedSo(LOOKUP_STOPPED), attempts: 2 })
  expect(await possiblyDelivering(id)).toBe(1)
  expect(await lookupCannotTell(id)).toEqual({
    ...exhausted('timeout', `${TIMED_OUT}${THAT}`),
    attempts: 2,
  })
  expect(await historyProblems(id)).toEqual([])
  expect(await entries(id)).toEqual([
    [1, 'retry', 'timeout', TIMED_OUT],
    [2, 'lease_expired', 'lease_expired', LOOKUP_STOPPED],
    [2, 'failed', 'timeout', `attempts exhausted; last error: ${TIMED_OUT}${THAT}`],
  ])
})

test("a counted claim after a send a gateway's 504 gave back, its worker stopped before it sent again (lookups on): the failure names the 504's send", async () => {
  const id = await interrupted(1, 0, 'priority = priority', true)
  const lease = await claimOne()
  expect(lease).toMatchObject({ attempt: 1, ambiguous: true })
  await stopped(id, true)
  expect(await words(id)).toEqual(reclaimedSo(LOOKUP_STOPPED))
  expect(await lookupCannotTell(id)).toEqual(exhausted('GatewayTimeout', `Gateway Timeout${THAT}`))
  expect(await historyProblems(id)).toEqual([])
})
