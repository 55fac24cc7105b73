// Table test of the one mapping from Graph sendMail responses and fetch failures to outcomes.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { PAST_EXPIRY_LOOKUP_LIMIT_SECONDS } from '../../src/outbox/lookup-grace.ts'
import { redact } from '../../src/transport/graph-error-text.ts'
import {
  APP_PERMISSION_PAUSE_MS,
  classifySendFailure,
  classifySendResponse,
  DEFAULT_THROTTLE_MS,
  MAX_RETRY_AFTER_MS,
  refusesMailbox,
  retryAfterMs,
  SENDER_MAILBOX_PAUSE_MS,
  SENDING_QUOTA_PAUSE_MS,
} from '../../src/transport/graph-outcome.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const NOW = Date.parse('2026-03-01T12:00:00Z')
const graphBody = (code: string, message = `${code} happened`) =>
  JSON.stringify({ error: { code, message, innerError: { 'request-id': 'body-rid' } } })

type Row = [
  name: string,
  status: number,
  headers: Record<string, string>,
  body: string,
  expected: Record<string, unknown>,
]

const table: Row[] = [
  [
    '202 is sent',
    202,
    { 'request-id': 'rid' },
    '',
    { kind: 'sent', httpStatus: 202, requestId: 'rid' },
  ],
  [
    '202 with Retry-After is still sent, never retried',
    202,
    { 'retry-after': '10' },
    '',
    { kind: 'sent', httpStatus: 202 },
  ],
  ['another 2xx is sent', 200, {}, '', { kind: 'sent', httpStatus: 200 }],
  [
    // last_error_code is in the failed rows' index (0025): an entry past ~2.7 kB fails the settlement,
    // and the row would be sent again (as an over-long correlation id did, 0027)
    'a 4xx whose code no Graph error has (3,000 characters, from a proxy) keeps its status as its code',
    400,
    {},
    graphBody('E'.repeat(3000)),
    { kind: 'reject', code: 'http_400' },
  ],
  [
    'a 5xx whose code holds blanks and markup keeps its status as its code',
    502,
    {},
    graphBody('<html> Bad gateway </html>'),
    { kind: 'retry', code: 'http_502' },
  ],
  [
    '429 with Retry-After: 0 still waits a second, not a retry at once',
    429,
    { 'retry-after': '0' },
    graphBody('ApplicationThrottled'),
    { kind: 'retry', code: 'ApplicationThrottled', afterMs: 1000, throttled: true },
  ],
  [
    '429 with delta-seconds',
    429,
    { 'retry-after': '7', 'request-id': 'rid' },
    graphBody('ApplicationThrottled'),
    {
      kind: 'retry',
      code: 'ApplicationThrottled',
      afterMs: 7000,
      throttled: true,
      refusesMailbox: undefined,
      httpStatus: 429,
      requestId: 'rid',
    },
  ],
  [
    '429 with an HTTP-date',
    429,
    { 'retry-after': new Date(NOW + 90_000).toUTCString() },
    graphBody('TooManyRequests'),
    { kind: 'retry', code: 'TooManyRequests', afterMs: 90_000, throttled: true },
  ],
  [
    '429 without Retry-After gets the default',
    429,
    {},
    '',
    { kind: 'retry', code: 'http_429', afterMs: DEFAULT_THROTTLE_MS, throttled: true },
  ],
  [
    '503 is a throttle',
    503,
    { 'retry-after': '2' },
    graphBody('ServiceUnavailable'),
    {
      kind: 'retry',
      code: 'ServiceUnavailable',
      afterMs: 2000,
      throttled: true,
      httpStatus: 503,
      ambiguous: undefined,
    },
  ],
  [
    '504 is a throttle that may have sent (a gateway timed out on a backend)',
    504,
    {},
    '',
    {
      kind: 'retry',
      code: 'http_504',
      afterMs: DEFAULT_THROTTLE_MS,
      throttled: true,
      ambiguous: true,
    },
  ],
  [
    '502 may have sent too (a gateway got no valid answer from the backend): a counted retry, ambiguous',
    502,
    {},
    graphBody('BadGateway'),
    { kind: 'retry', code: 'BadGateway', throttled: undefined, ambiguous: true, httpStatus: 502 },
  ],
  [
    'a huge Retry-After is capped',
    429,
    { 'retry-after': '999999' },
    '',
    { kind: 'retry', afterMs: MAX_RETRY_AFTER_MS },
  ],
  [
    '500 retries with engine backoff',
    500,
    { 'request-id': 'rid' },
    graphBody('InternalServerError'),
    {
      kind: 'retry',
      code: 'InternalServerError',
      afterMs: undefined,
      throttled: undefined,
      httpStatus: 500,
    },
  ],
  [
    '502 with an HTML body retries',
    502,
    {},
    '<html>bad gateway</html>',
    { kind: 'retry', code: 'http_502', afterMs: undefined },
  ],
  ['408 retries', 408, {}, '', { kind: 'retry', code: 'http_408' }],
  [
    // graph-request.ts settles every 401 (a fresh token, then graph_unauthorized): none comes here.
    '401, should one come, is the token’s: a retry, never a reject',
    401,
    { 'request-id': 'rid' },
    graphBody('InvalidAuthenticationToken'),
    {
      kind: 'retry',
      code: 'InvalidAuthenticationToken',
      httpStatus: 401,
      requestId: 'rid',
      throttled: undefined,
      afterMs: undefined,
    },
  ],
  [
    '400 ErrorInvalidRecipients rejects',
    400,
    {},
    graphBody('ErrorInvalidRecipients'),
    { kind: 'reject', code: 'ErrorInvalidRecipients', httpStatus: 400, requestId: 'body-rid' },
  ],
  [
    '403 ErrorAccessDenied (no Mail.Send consent, an access policy) waits, uncounted',
    403,
    {},
    graphBody('ErrorAccessDenied'),
    {
      kind: 'retry',
      code: 'ErrorAccessDenied',
      afterMs: APP_PERMISSION_PAUSE_MS,
      throttled: true,
      refusesMailbox: true,
      httpStatus: 403,
    },
  ],
  [
    '403 NoPermissionsInAccessToken waits, uncounted',
    403,
    {},
    graphBody('NoPermissionsInAccessToken'),
    { kind: 'retry', code: 'NoPermissionsInAccessToken', throttled: true, refusesMailbox: true },
  ],
  [
    '403 ErrorSendAsDenied rejects',
    403,
    {},
    graphBody('ErrorSendAsDenied'),
    { kind: 'reject', code: 'ErrorSendAsDenied' },
  ],
  [
    '404 MailboxNotEnabledForRESTAPI rejects',
    404,
    {},
    graphBody('MailboxNotEnabledForRESTAPI'),
    { kind: 'reject', code: 'MailboxNotEnabledForRESTAPI', httpStatus: 404 },
  ],
  [
    '404 ErrorInvalidUser rejects',
    404,
    {},
    graphBody('ErrorInvalidUser'),
    { kind: 'reject', code: 'ErrorInvalidUser' },
  ],
  [
    '404 ResourceNotFound rejects',
    404,
    {},
    graphBody('ResourceNotFound'),
    { kind: 'reject', code: 'ResourceNotFound' },
  ],
  [
    "400 ErrorExceededMessageLimit (the mailbox's sending quota is spent) waits, uncounted",
    400,
    {},
    graphBody(
      'ErrorExceededMessageLimit',
      'Cannot send mail. Daily Message/Recipient limit exceeded.',
    ),
    {
      kind: 'retry',
      code: 'ErrorExceededMessageLimit',
      afterMs: SENDING_QUOTA_PAUSE_MS,
      throttled: true,
      httpStatus: 400,
    },
  ],
  [
    '403 ErrorExceededMessageLimit with Retry-After waits that long',
    403,
    { 'retry-after': '600' },
    graphBody('ErrorExceededMessageLimit'),
    { kind: 'retry', code: 'ErrorExceededMessageLimit', afterMs: 600_000, throttled: true },
  ],
  [
    "403 ErrorQuotaExceeded (the sender's mailbox is full) waits, uncounted, as a spent quota does",
    403,
    {},
    graphBody('ErrorQuotaExceeded', 'Mailbox has exceeded maximum mailbox size.'),
    {
      kind: 'retry',
      code: 'ErrorQuotaExceeded',
      afterMs: SENDING_QUOTA_PAUSE_MS,
      throttled: true,
      httpStatus: 403,
    },
  ],
  [
    '507 QuotaExceededException (a full mailbox, as Graph words it elsewhere) waits likewise',
    507,
    {},
    graphBody('QuotaExceededException', 'Target mailbox quota exceeded.'),
    {
      kind: 'retry',
      code: 'QuotaExceededException',
      afterMs: SENDING_QUOTA_PAUSE_MS,
      throttled: true,
    },
  ],
  [
    '400 ErrorMessageSizeExceeded rejects: the message itself is too big',
    400,
    {},
    graphBody('ErrorMessageSizeExceeded'),
    { kind: 'reject', code: 'ErrorMessageSizeExceeded', httpStatus: 400 },
  ],
  [
    '413 without a body rejects with the status',
    413,
    {},
    '',
    { kind: 'reject', code: 'http_413', httpStatus: 413 },
  ],
]

describe('classifySendResponse', () => {
  for (const [name, status, headers, body, expected] of table) {
    test(name, () => {
      const outcome = classifySendResponse(status, new Headers(headers), body, NOW)
      const present = Object.fromEntries(
        Object.entries(expected).filter(([, v]) => v !== undefined),
      )
      expect(outcome).toMatchObject(present)
      for (const [k, v] of Object.entries(expected)) {
        if (v === undefined)
          expect((outcome as unknown as Record<string, unknown>)[k]).toBeUndefined()
      }
    })
  }

  test('the header request-id wins over the one in the body', () => {
    const outcome = classifySendResponse(
      400,
      new Headers({ 'request-id': 'hdr' }),
      graphBody('X'),
      NOW,
    )
    expect(outcome.requestId).toBe('hdr')
  })

  test("the body's request id is read under innererror too (OData's own spelling)", () => {
    const body = JSON.stringify({
      error: { code: 'X', message: 'm', innererror: { 'request-id': 'lower-rid' } },
    })
    expect(classifySendResponse(400, new Headers(), body, NOW).requestId).toBe('lower-rid')
  })

  test("Graph's message is kept to 500 characters: it reaches the attempt history and the logs", () => {
    const long = 'Recipient could not be resolved. '.repeat(60)
    const outcome = classifySendResponse(400, new Headers(), graphBody('X', long), NOW)
    expect(outcome.kind === 'reject' && outcome.message).toBe(long.slice(0, 500))
  })

  test('a 404 from the configured sender mailbox (MAIL_FROM) waits, uncounted, for the mailbox pause or Retry-After; a row of its own mailbox is rejected', () => {
    for (const code of ['ErrorInvalidUser', 'MailboxNotEnabledForRESTAPI', 'ResourceNotFound']) {
      expect(classifySendResponse(404, new Headers(), graphBody(code), NOW, 'default')).toEqual({
        kind: 'retry',
        code,
        message: `${code} happened`,
        afterMs: SENDER_MAILBOX_PAUSE_MS,
        throttled: true,
        refusesMailbox: true,
        httpStatus: 404,
        requestId: 'body-rid',
      })
      expect(classifySendResponse(404, new Headers(), graphBody(code), NOW, 'own')).toMatchObject({
        kind: 'reject',
        code,
      })
    }
    expect(
      classifySendResponse(404, new Headers({ 'retry-after': '60' }), '', NOW, 'default'),
    ).toMatchObject({ kind: 'retry', code: 'http_404', afterMs: 60_000, throttled: true })
    // The message's own errors stay the row's, whatever its mailbox.
    expect(
      classifySendResponse(400, new Headers(), graphBody('ErrorInvalidRecipients'), NOW, 'default'),
    ).toMatchObject({ kind: 'reject', code: 'ErrorInvalidRecipients' })
    expect(
      classifySendResponse(403, new Headers(), graphBody('ErrorSendAsDenied'), NOW, 'default'),
    ).toMatchObject({ kind: 'reject', code: 'ErrorSendAsDenied' })
  })

  test('refusesMailbox: a 404, or a 403 by which the app may not send from the mailbox', () => {
    expect(refusesMailbox(404, 'ErrorInvalidUser')).toBe(true)
    expect(refusesMailbox(404, 'http_404')).toBe(true)
    expect(refusesMailbox(403, 'ErrorAccessDenied')).toBe(true)
    expect(refusesMailbox(403, 'NoPermissionsInAccessToken')).toBe(true)
    expect(refusesMailbox(403, 'ErrorSendAsDenied')).toBe(false)
    expect(refusesMailbox(403, 'ErrorExceededMessageLimit')).toBe(false)
    expect(refusesMailbox(400, 'ErrorInvalidRecipients')).toBe(false)
    expect(refusesMailbox(429, 'ApplicationThrottled')).toBe(false)
  })

  test('addresses quoted by Graph never reach the outcome message', () => {
    const body = graphBody(
      'ErrorInvalidRecipients',
      "Recipient 'jane.doe@contoso.com' isn't resolved.",
    )
    const outcome = classifySendResponse(400, new Headers(), body, NOW)
    expect(outcome.kind === 'reject' && outcome.message).toBe(
      "Recipient '[address]' isn't resolved.",
    )
  })

  test("an address with an apostrophe in its local part is taken out whole, Graph's quotes and words kept", () => {
    const said = [
      "Recipient 'mary.o'hara@contoso.com' isn't resolved.",
      "Recipients 'd'arcy.o'neil@contoso.com','o'hara@contoso.com' aren't resolved.",
      "It doesn't resolve /users/o'hara%40contoso.com/sendMail",
      "Recipient 'o'@contoso.com' isn't resolved.",
    ]
    expect(said.map(redact)).toEqual([
      "Recipient '[address]' isn't resolved.",
      "Recipients '[address]','[address]' aren't resolved.",
      "It doesn't resolve [address]",
      "Recipient '[address]' isn't resolved.",
    ])
  })

  // The reads of the text's characters, counted (a Proxy over it), not timed: each @ of a run with
  // no blank once read back to the run's start, so a body of @' repeated was read n²/4 times.
  test('redact reads each character of the text a bounded number of times, whatever the text', () => {
    const readsOf = (text: string) => {
      let reads = 0
      const target = new String(text)
      const counted = new Proxy(target, {
        get(t, k) {
          if (typeof k === 'string' && /^\d+$/.test(k)) reads++
          const v = Reflect.get(t, k)
          return typeof v === 'function' ? v.bind(t) : v
        },
      }) as unknown as string
      const redacted = redact(counted)
      expect(redacted).toBe(redact(text))
      return reads
    }
    const n = 4_000
    const texts = [
      "@'".repeat(n / 2),
      "'".repeat(n / 2) + "@'".repeat(n / 4),
      'a%4'.repeat(n / 3),
      'a@ '.repeat(n / 3),
      `${'x'.repeat(n / 2)}@`.repeat(2),
      "Recipient 'mary.o'hara@contoso.com' isn't resolved. ".repeat(n / 52),
    ]
    // Reads per character of each text, those past 4 listed by their index.
    const perCharacter = texts.map((text, i) => [i, Math.round(readsOf(text) / text.length)])
    expect(perCharacter.filter(([, r]) => r! > 4)).toEqual([])
  })
})

describe('classifySendFailure', () => {
  const live = new AbortController().signal
  test('a deadline is a timeout', () => {
    const e = new DOMException('The operation timed out.', 'TimeoutError')
    expect(classifySendFailure(e, live)).toMatchObject({ kind: 'retry', code: 'timeout' })
  })
  test('a refused connection is a network error', () => {
    expect(classifySendFailure(new TypeError('fetch failed'), live)).toMatchObject({
      kind: 'retry',
      code: 'network',
    })
  })
  test('no connection (refused, no such host): nothing reached Graph, so not ambiguous', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']) {
      const e = Object.assign(new TypeError(`${code}: cannot connect`), { code })
      expect(classifySendFailure(e, live)).toMatchObject({
        kind: 'retry',
        code: 'network',
        ambiguous: false,
      })
    }
  })
  test('a connection that broke after the request went out stays ambiguous', () => {
    const e = Object.assign(new TypeError('socket closed'), { code: 'ECONNRESET' })
    expect(classifySendFailure(e, live).ambiguous).toBeUndefined()
  })
  test('a fetch error naming the request URL keeps the sender mailbox out (percent-encoded there)', () => {
    // Bun's words for a certificate naming another host, with the sendMail URL in them.
    const url = 'https://graph.microsoft.com/v1.0/users/jane.doe%40contoso.com/sendMail'
    const e = Object.assign(
      new TypeError(`ERR_TLS_CERT_ALTNAME_INVALID fetching "${url}". For more information …`),
      { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    )
    const { message } = classifySendFailure(e, live)
    expect(message).toStartWith('Graph request failed: TypeError: ERR_TLS_CERT_ALTNAME_INVALID')
    expect(message).not.toContain('jane.doe')
    expect(message).not.toContain('contoso.com')
  })
  test('shutdown is reported as aborted', () => {
    const c = new AbortController()
    c.abort()
    expect(classifySendFailure(c.signal.reason, c.signal)).toMatchObject({
      kind: 'retry',
      code: 'aborted',
    })
  })
})

describe('retryAfterMs', () => {
  test.each([
    ['0', 0],
    ['1.5', 1500],
    ['  12 ', 12_000],
    [new Date(NOW - 5000).toUTCString(), 0],
  ])('%p → %p', (value, ms) => expect(retryAfterMs(value, NOW)).toBe(ms))
  test('absent or garbled is undefined', () => {
    expect(retryAfterMs(null, NOW)).toBeUndefined()
    expect(retryAfterMs('soon', NOW)).toBeUndefined()
    expect(retryAfterMs('-3', NOW)).toBeUndefined()
  })
})

// A row waiting past its expiresAt for its interrupted send's lookup waits at most the lookup grace
// plus PAST_EXPIRY_LOOKUP_LIMIT_SECONDS (a constant, no setting): one whole pause of its mailbox,
// the longest the transport sets, fits in it, so no single pause fails it unlooked.
test('the longest pause the transport sets a mailbox (a Retry-After at its cap, its own pauses) fits in the wait past expiresAt for a lookup', () => {
  const longest = Math.max(
    retryAfterMs(String(24 * 3600), NOW) ?? 0,
    DEFAULT_THROTTLE_MS,
    SENDING_QUOTA_PAUSE_MS,
    APP_PERMISSION_PAUSE_MS,
    SENDER_MAILBOX_PAUSE_MS,
  )
  expect(longest).toBe(MAX_RETRY_AFTER_MS)
  expect(longest).toBeLessThanOrEqual(PAST_EXPIRY_LOOKUP_LIMIT_SECONDS * 1000)
})
