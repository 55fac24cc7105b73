// The fault checks' count of a row's sends that may have delivered it (each once), from histories real runs and tests wrote.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { AttemptEntry } from '../faults/chaos/outcome.ts'
import { acceptancesUnexplained, interruptedSends, sortAcceptances } from '../faults/send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

type Entry = Omit<AttemptEntry, 'outbox_id' | 'worker_id' | 'finished_ms'> & {
  finished_ms?: number
}
/** Row 7's history of `entries`, each written a second after the one before unless it says when. */
const history = (...entries: Entry[]): AttemptEntry[] =>
  entries.map((e, i) => ({
    outbox_id: '7',
    worker_id: 'vm:1:a',
    finished_ms: (i + 1) * 1000,
    ...e,
  }))
const sends = (hist: AttemptEntry[], sendTimes: number[] = []) => interruptedSends(hist, sendTimes)
/** An entry of attempt `attempt` ending `outcome` (its code the same), which made no send unless `o` says. */
const entry = (attempt: number, outcome: string, o: Partial<Entry> = {}): Entry => ({
  attempt,
  outcome,
  error_code: outcome,
  error: null,
  http_status: null,
  kind: null,
  started: false,
  ...o,
})
const EXPIRED_INTERRUPTED = 'expiresAt passed; an interrupted send may have delivered it'

// Chaos seed 5101 (resend, harsh, pauses): a send whose connection was cut (row 131's first entry).
const cut = entry(1, 'retry', {
  error_code: 'network',
  error:
    'Graph request failed: TypeError: ECONNRESET: The socket connection was closed unexpectedly. For more information, pass `verbose: true` in the second argument to fetch()',
  started: true,
})
// drainer.test.ts: the unverified resend after it, refused for good (403), delivered nothing.
const refusedResend = entry(2, 'failed', {
  error_code: 'ErrorSendAsDenied',
  error: 'HTTP 403 (an earlier send was interrupted and may have delivered it)',
  http_status: 403,
  started: true,
})
const sent = entry(3, 'sent', { error_code: null, http_status: 202, started: true })
const timedOut = { ...cut, error_code: 'timeout', error: 'Graph request exceeded its deadline' }

test("a refused unverified resend's entry names the earlier interrupted send, already counted by its own entry: one send, not two", () => {
  expect(sends(history(cut, refusedResend))).toBe(1)
  // Seed 5104's row 307 (resend, harsh, pauses): to the recipient the fake rejects, a send timed
  // out, and its resend was refused (400).
  const rejected = entry(2, 'failed', {
    error_code: 'ErrorInvalidRecipients',
    error:
      "At least one recipient isn't valid., Recipient '[address]' isn't resolved. All recipients must be resolved before a message can be submitted. (an earlier send was interrupted and may have delivered it)",
    http_status: 400,
    started: true,
  })
  expect(sends(history(timedOut, rejected))).toBe(1)
})

test('retried through the API after that refusal and sent, a row Graph accepted three times was sent twice beyond what its one interrupted send explains', () => {
  const hist = history(cut, refusedResend, sent)
  expect(sortAcceptances([['7', 3]], new Map([['7', hist]]), new Map())).toEqual({
    duplicates: 2,
    ambiguousResends: 1,
    doubleSends: [
      {
        id: '7',
        accepted: 3,
        history: '1:retry/network 2:failed/ErrorSendAsDenied/403 3:sent/202',
      },
    ],
  })
})

test("seed 5101's row 88: a send cut short whose retry would come after the expiresAt ends the row expired, its entry the send's own: counted", () => {
  expect(sends(history(entry(1, 'expired', { error: EXPIRED_INTERRUPTED, started: true })))).toBe(1)
})

test("seed 5101's rows 131 and 18: an expiry or a cancel that sent nothing names the interrupted send before it: not counted again", () => {
  expect(sends(history(cut, entry(1, 'expired', { error: EXPIRED_INTERRUPTED })))).toBe(1)
  const gateway504 = entry(1, 'throttled', {
    error_code: 'GatewayTimeout',
    error: 'Gateway Timeout',
    http_status: 504,
    started: true,
  })
  const cancelled = entry(1, 'cancelled', {
    error: 'cancelled; an interrupted send may have delivered it',
  })
  expect(sends(history(gateway504, gateway504, cancelled))).toBe(2)
})

test("seed 5101's row 43: a lease given back unsent keeps the row's last code (timeout), and is no send", () => {
  const released = { ...timedOut, attempt: 2, outcome: 'released', started: false }
  const throttled = entry(2, 'throttled', {
    error_code: 'ApplicationThrottled',
    http_status: 429,
    started: true,
  })
  expect(sends(history(timedOut, released, throttled, { ...sent, attempt: 2 }))).toBe(1)
})

test('drainer.test.ts: a resend answered for sure (500) that would retry after the expiresAt, and a row no longer rendering after an interrupted send, sent nothing; a resend that timed out too did', () => {
  const expiredAfter500 = entry(2, 'expired', {
    error: EXPIRED_INTERRUPTED,
    http_status: 500,
    started: true,
  })
  expect(sends(history(cut, expiredAfter500))).toBe(1)
  const unrenderable = entry(2, 'failed', {
    error_code: 'sender_not_allowed',
    error:
      'message.from names a mailbox MAIL_FROM_ALLOWED does not list: not sent again; an earlier send was interrupted and may have delivered it',
  })
  expect(sends(history(cut, unrenderable))).toBe(1)
  const bothUnanswered = entry(2, 'failed', {
    error_code: 'timeout',
    error:
      'attempts exhausted; last error: Graph request exceeded its deadline (that send, or an earlier interrupted one, may have delivered it)',
    started: true,
  })
  expect(sends(history(cut, bothUnanswered))).toBe(2)
})

const at = (iso: string) => Date.parse(`2026-12-07T${iso}Z`)
const reclaimed = (attempt: number, finished: string) =>
  entry(attempt, 'lease_expired', {
    error: 'the worker holding the lease stopped during the send; outcome unknown',
    finished_ms: at(finished),
  })

test("seed 5101's row 33: a reclaim during the send whose lease sent nothing (the mark an earlier send's) is no send; a fourth acceptance is a double send", () => {
  const hist = history(
    { ...timedOut, finished_ms: at('00:22:54.550') },
    entry(2, 'throttled', {
      error_code: 'GatewayTimeout',
      http_status: 504,
      started: true,
      finished_ms: at('00:23:00.153'),
    }),
    reclaimed(2, '00:23:41.509'),
    { ...sent, finished_ms: at('00:23:51.135') },
  )
  // The fake's sendMails: the hang and the 504 accepted, the last one answered 202.
  const sendTimes = [at('00:22:52.533'), at('00:22:59.962'), at('00:23:51.121')]
  expect(sends(hist, sendTimes)).toBe(2)
  const of = <T>(v: T) => new Map([['7', v]])
  expect(sortAcceptances([['7', 3]], of(hist), of(sendTimes)).doubleSends).toEqual([])
  expect(sortAcceptances([['7', 4]], of(hist), of(sendTimes)).doubleSends).toEqual([
    {
      id: '7',
      accepted: 4,
      history:
        '1:retry/timeout 2:throttled/GatewayTimeout/504 2:lease_expired/lease_expired 3:sent/202',
    },
  ])
})

test("seed 5101's row 60: a reclaim during the send whose lease sent (a sendMail after the entry before it) is a send that may have delivered it", () => {
  const hist = history(
    { ...timedOut, finished_ms: at('00:23:00.153') },
    reclaimed(2, '00:23:41.509'),
    { ...sent, finished_ms: at('00:23:51.135') },
  )
  expect(sends(hist, [at('00:22:58.140'), at('00:23:36.964'), at('00:23:51.121')])).toBe(2)
})

test("row 60's reclaim read by its kind where the entry carries one (sql/0189), whatever its words; an older release's (no kind) by its words", () => {
  const sendTimes = [at('00:22:58.140'), at('00:23:36.964'), at('00:23:51.121')]
  const withStop = (stop: Partial<Entry>) =>
    sends(
      history(
        { ...timedOut, finished_ms: at('00:23:00.153') },
        { ...reclaimed(2, '00:23:41.509'), ...stop },
        { ...sent, finished_ms: at('00:23:51.135') },
      ),
      sendTimes,
    )
  const reworded = 'the worker holding the lease went away mid-request'
  expect([
    withStop({ kind: 'stopped_during_send', error: reworded }),
    withStop({ kind: 'stopped_looking_up' }),
    withStop({ kind: null, error: reworded }),
  ]).toEqual([2, 1, 1])
})

test("seed 5101's row 126, failed out of attempts after one send that timed out (accepted): a second acceptance of a row not sent is one its sends leave unexplained", () => {
  const hist = history(
    entry(1, 'released', { error_code: null }),
    entry(1, 'lease_expired', { error: 'the worker holding the lease stopped before sending' }),
    entry(2, 'failed', {
      error_code: 'timeout',
      error:
        'attempts exhausted; last error: Graph request exceeded its deadline (that send may have delivered it)',
      started: true,
    }),
  )
  expect(sends(hist)).toBe(1)
  expect(acceptancesUnexplained(1, sends(hist), false)).toBe(0)
  expect(acceptancesUnexplained(2, sends(hist), false)).toBe(1)
  // Marked sent, its own send explains one acceptance more.
  expect(acceptancesUnexplained(2, sends(hist), true)).toBe(0)
})
