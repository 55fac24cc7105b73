// The chaos soak's history check: which attempt numbers a finished row's history may hold, from seeds that found the check wrong.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { checkHistory } from '../faults/chaos/history-checks.ts'
import type { AttemptEntry, OutboxRow } from '../faults/chaos/outcome.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const row = (o: Partial<OutboxRow>): OutboxRow => ({
  id: '4',
  status: 'cancelled',
  attempts: 0,
  max_attempts: 6,
  last_error_code: 'cancelled',
  last_error: 'cancelled; an earlier send was interrupted and may have delivered it',
  expires_at: null,
  sent_at: null,
  send_started_at: new Date(0),
  lease_owner: null,
  lease_token: null,
  lease_expires_at: null,
  rejected: false,
  ...o,
})
const entry = (attempt: number, outcome: string, o: Partial<AttemptEntry> = {}): AttemptEntry => ({
  outbox_id: '4',
  attempt,
  worker_id: 'vm:1:a',
  outcome,
  error_code: null,
  error: null,
  http_status: null,
  kind: null,
  started: false,
  finished_ms: 0,
  ...o,
})
const problemsOf = (
  r: OutboxRow,
  hist: AttemptEntry[],
  cancelAsked: boolean,
  olderPids: ReadonlySet<number> = new Set(),
) => {
  const said: string[] = []
  checkHistory('resend', { r, hist, retries: 0, cancelAsked, say: (w) => said.push(w), olderPids })
  return said
}

// A gateway's 504: Graph may have taken the message (its mark kept), the try given back uncounted.
const gateway504 = entry(1, 'throttled', {
  error_code: 'GatewayTimeout',
  error: 'Gateway Timeout',
  http_status: 504,
})

// The history of seed 5003's row 4 (resend, harsh): a 503, the 504, then the cancel's lookup.
const cancelledAfter504 = (attempt: number) => [
  entry(1, 'throttled', { error_code: 'ServiceUnavailable', http_status: 503 }),
  gateway504,
  entry(attempt, 'cancelled', {
    error_code: 'cancelled',
    error: 'cancelled; an interrupted send may have delivered it',
  }),
]

test("a cancel's lookup of a send a 504 left in doubt, given back uncounted, numbers that send's attempt (1), one above the row's attempts (0): no problem", () => {
  expect(problemsOf(row({}), cancelledAfter504(1), true)).toEqual([])
})

test("an older release's worker numbers such a lookup as the row's attempts (0): no problem for its pids alone (seed 5003, CHAOS_OLDER_BINARY)", () => {
  expect(problemsOf(row({}), cancelledAfter504(0), true, new Set([1]))).toEqual([])
  expect(problemsOf(row({}), cancelledAfter504(0), true, new Set([2]))).toEqual([
    'counted attempts 0 do not number 1..0',
  ])
})

test("past its expiresAt, the lookup of a send a 504 left in doubt numbers that send's attempt (1); an older release's worker's 0 passes for its pids alone", () => {
  const sent = row({
    status: 'sent',
    last_error_code: null,
    last_error: null,
    expires_at: new Date(0),
    send_started_at: null,
  })
  expect(problemsOf(sent, [gateway504, entry(1, 'sent')], false)).toEqual([])
  expect(problemsOf(sent, [gateway504, entry(0, 'sent')], false, new Set([1]))).toEqual([])
  expect(problemsOf(sent, [gateway504, entry(0, 'sent')], false)).toEqual([
    'counted attempts 0 do not number 1..0',
  ])
})

test('a worker entry numbered 0 is still a problem without a cancel asked, or without the uncounted send in doubt before it', () => {
  const cancelled = entry(0, 'cancelled', { error_code: 'cancelled' })
  expect(problemsOf(row({}), [gateway504, cancelled], false)).toEqual([
    'counted attempts 0 do not number 1..0',
    'cancelled, and nobody asked',
  ])
  const throttled503 = entry(1, 'throttled', { error_code: 'ServiceUnavailable', http_status: 503 })
  expect(problemsOf(row({}), [throttled503, cancelled], true)).toEqual([
    'counted attempts 0 do not number 1..0',
  ])
})

test('a counted claim after a 504, numbered as the 504 was, still counts: its lookup found the send on the last attempt', () => {
  const sent = row({
    status: 'sent',
    attempts: 3,
    max_attempts: 3,
    last_error_code: null,
    last_error: null,
    send_started_at: null,
  })
  const hist = [
    entry(1, 'retry'),
    entry(2, 'retry'),
    { ...gateway504, attempt: 3 },
    entry(3, 'sent'),
  ]
  expect(problemsOf(sent, hist, false)).toEqual([])
})

test("past its expiresAt, a lookup whose worker stopped is reclaimed numbered as the send it looks up, counting none (sql/0162): looked up again (sent) or ended expired at the third stop; a counted claim's stop still counts", () => {
  const timedOut = entry(1, 'retry', { error_code: 'timeout' })
  const stopped = entry(1, 'lease_expired', {
    error_code: 'lease_expired',
    error: 'the worker holding the lease stopped during the send; outcome unknown',
  })
  const pastExpiry = { expires_at: new Date(0), max_attempts: 3, attempts: 1 }
  const sent = row({ ...pastExpiry, status: 'sent', last_error_code: null, last_error: null })
  expect(problemsOf(sent, [timedOut, stopped, entry(1, 'sent')], false)).toEqual([])
  const ended = row({
    ...pastExpiry,
    status: 'failed',
    last_error_code: 'expired',
    last_error:
      'expiresAt passed; an interrupted send may have delivered it (the worker looking it up stopped)',
  })
  const endedEntry = entry(1, 'expired', { error_code: 'expired', error: ended.last_error })
  expect(problemsOf(ended, [timedOut, stopped, stopped, endedEntry], false)).toEqual([])
  // A claim counted before the expiresAt whose worker stopped during its send: attempt 2, counted.
  const counted = row({
    expires_at: new Date(0),
    status: 'failed',
    attempts: 2,
    max_attempts: 2,
    last_error_code: 'lease_expired',
    last_error: stopped.error,
  })
  const failed500 = entry(1, 'retry', { error_code: 'http_500', http_status: 500 })
  expect(problemsOf(counted, [failed500, { ...stopped, attempt: 2 }], false)).toEqual([])
  // Numbered as an earlier attempt (a reclaim that gave a counted claim back): still found.
  expect(problemsOf(counted, [failed500, stopped], false)).toEqual([
    'the last history entry names another attempt than the row',
    'counted attempts 1 do not number 1..2',
  ])
})

/** Seed 843078098's row 73 (hold): failed at its expiresAt, its first send timed out, attempts 2. */
const EXPIRY = 'expiresAt passed; an interrupted send may have delivered it'
const row73 = row({
  expires_at: new Date(0),
  status: 'failed',
  attempts: 2,
  last_error_code: 'expired',
  last_error: EXPIRY,
})
const row73Problems = (stop: AttemptEntry, expired: Partial<AttemptEntry> = {}) =>
  problemsOf(
    row73,
    [
      entry(1, 'retry', { error_code: 'timeout' }),
      stop,
      entry(2, 'expired', { error_code: 'expired', error: EXPIRY, ...expired }),
    ],
    false,
  )

test("seed 843078098's row 73 (hold): after a counted claim's stop before sending again, the expiry numbered as that claim (the row's count) names the earlier send, counting none; after a stop before a first send, it would not", () => {
  const stoppedBeforeSendingAgain = entry(2, 'lease_expired', {
    error_code: 'lease_expired',
    error:
      "the worker holding the lease stopped before sending again; the earlier interrupted send's outcome unknown",
  })
  expect(row73Problems(stoppedBeforeSendingAgain)).toEqual([])
  // A stop before a first send (no mark): the row's expiry counts its claim, so one numbered as
  // the stop's is one attempt too many.
  const stoppedBeforeSending = {
    ...stoppedBeforeSendingAgain,
    error: 'the worker holding the lease stopped before sending',
  }
  expect(row73Problems(stoppedBeforeSending)).toEqual(['counted attempts 1,2,2 do not number 1..2'])
})

test("a worker's stop is read by its kind where the entry carries one (sql/0189), whatever its words; an older release's entry (no kind) by its words", () => {
  const stop = (kind: AttemptEntry['kind'], error: string) =>
    entry(2, 'lease_expired', { error_code: 'lease_expired', error, kind })
  // Row 73's stop worded otherwise by a later release: its kind says it stopped before sending
  // again, which the expiry numbered as that claim follows.
  const reworded = 'the worker stopped with the row in hand; it sent nothing this time'
  expect(row73Problems(stop('stopped_before_resend', reworded), { kind: 'unresolved' })).toEqual([])
  // A kind names a stop before a first send, though the words read as one during the send: counted.
  expect(
    row73Problems(
      stop('stopped_before_send', 'the worker holding the lease stopped during the send'),
      { kind: 'unresolved' },
    ),
  ).toEqual(['counted attempts 1,2,2 do not number 1..2'])
  // No kind (an older release's entry): its words decide, which a rewording would have misled.
  expect(row73Problems(stop(null, reworded))).toEqual(['counted attempts 1,2,2 do not number 1..2'])
})
