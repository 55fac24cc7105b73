// A wrong value anywhere in a request is a 400 worded as the API's own messages are (what is wrong, what is accepted), at the field's own path, never in zod's default wording.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()
const message = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' }
const STATUSES = 'must be one of pending, sending, sent, failed, cancelled'
const NAMELESS = (n: number) =>
  `holds a parameter with no name (its parameter ${n}, "=…"): each is name=value, named as the route takes it`

// The openings of zod's English messages ("Invalid input: expected record, received number",
// "Too small: expected string to have >=1 characters", "Invalid option: expected one of ...").
const ZOD_DEFAULT = /^(Invalid|Too (small|big))\b|expected .*received|[<>]=/

const problemOf = (r: { status: number; body: unknown }) => {
  const b = r.body as { type: string; status: number; detail: string; errors: unknown }
  return { status: r.status, type: b.type, detail: b.detail, errors: b.errors }
}

describe('the problem document', () => {
  test('?status=bogus names the parameter status, not status.0, and the value refused', async () => {
    const r = await send(s.app, 'GET', '/v1/outbox?status=bogus', { token: s.tk })
    expect(problemOf(r)).toEqual({
      status: 400,
      type: 'urn:outbox-mailer:problem:validation_failed',
      detail: `status: ${STATUSES} (given "bogus")`,
      errors: [{ path: 'status', message: `${STATUSES} (given "bogus")` }],
    })
  })

  test('each refused value of a repeated parameter is its own entry naming it; a valid one is not named', async () => {
    const r = await send(s.app, 'GET', '/v1/outbox?status=a&status=pending&status=b', {
      token: s.tk,
    })
    expect(problemOf(r).errors).toEqual([
      { path: 'status', message: `${STATUSES} (given "a")` },
      { path: 'status', message: `${STATUSES} (given "b")` },
    ])
  })

  test('a query value refused is named beside its parameter; a long one cut, a name refused without its value', async () => {
    const cases: [string, { path: string; message: string }[]][] = [
      [
        'limit=abc',
        [
          {
            path: 'limit',
            message:
              'must be a whole number from 1 to 200 in decimal digits, no sign, space or leading zero (given "abc")',
          },
        ],
      ],
      ['limit=201', [{ path: 'limit', message: 'must be at most 200 (given "201")' }]],
      ['order=asc', [{ path: 'order', message: 'must be one of newest, oldest (given "asc")' }]],
      [
        `tenant=${'x'.repeat(100)}&limit=0`,
        [{ path: 'limit', message: 'must be at least 1 (given "0")' }],
      ],
      [
        `createdFrom=${'y'.repeat(100)}`,
        [
          {
            path: 'createdFrom',
            message: `must be an ISO-8601 timestamp with a time zone (Z, ±hh, ±hhmm or ±hh:mm), as options.sendAt takes it, e.g. 2030-01-01T00:00:00Z (given "${'y'.repeat(60)}…", 100 characters)`,
          },
        ],
      ],
      // The name is what is wrong, and an empty value says nothing.
      [
        'limt=5',
        [{ path: 'limt', message: expect.stringMatching(/is not a query parameter[^"]*$/) }],
      ],
      ['tenant=', [{ path: 'tenant', message: 'must not be empty' }]],
      // Given twice: the values are quoted in the order given, so the client sees which it sent.
      ['limit=5&limit=abc', [{ path: 'limit', message: 'takes one value, given 2 ("5", "abc")' }]],
      [
        'order=newest&order=oldest&order=x',
        [{ path: 'order', message: 'takes one value, given 3 ("newest", "oldest", "x")' }],
      ],
      // A text filter's values are not quoted, repeated or not.
      ['tenant=a&tenant=b', [{ path: 'tenant', message: 'takes one value, given 2' }]],
      // A parameter without a name is refused as one of a name not taken is, its place said (its
      // value unquoted: it could be anything); an empty piece between two & is no parameter.
      ['limit=5&=pending', [{ path: '(query)', message: NAMELESS(2) }]],
      ['=', [{ path: '(query)', message: NAMELESS(1) }]],
    ]
    for (const [query, errors] of cases) {
      const r = await send(s.app, 'GET', `/v1/outbox?${query}`, { token: s.tk })
      expect([query, problemOf(r).errors]).toEqual([query, errors])
    }
    expect((await send(s.app, 'GET', '/v1/outbox?&&limit=5&', { token: s.tk })).status).toBe(200)
  })

  test('an empty Idempotency-Key says what a key is', async () => {
    const r = await send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body: { message },
      headers: { 'idempotency-key': '' },
    })
    const empty =
      'must not be empty: a key is 1 to 500 printable ASCII characters (or send no Idempotency-Key)'
    expect(problemOf(r)).toEqual({
      status: 400,
      type: 'urn:outbox-mailer:problem:validation_failed',
      detail: `idempotency-key: ${empty}`,
      errors: [{ path: 'idempotency-key', message: empty }],
    })
  })

  test('message.headers of the wrong type says it must be an object of names to values, not "expected record"', async () => {
    const r = await send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body: { message: { ...message, headers: 5 } },
    })
    const want = 'must be an object of names to values, not a number'
    expect(problemOf(r)).toEqual({
      status: 400,
      type: 'urn:outbox-mailer:problem:validation_failed',
      detail: `message.headers: ${want}`,
      errors: [{ path: 'message.headers', message: want }],
    })
  })

  test('a wrong type, an empty string and a missing field each say what is accepted', async () => {
    const cases: [string, string, unknown, { path: string; message: string }[]][] = [
      ['POST', '/v1/outbox', 5, [{ path: '(root)', message: 'must be an object, not a number' }]],
      [
        'POST',
        '/v1/outbox',
        { message: { ...message, subject: 5 } },
        [{ path: 'message.subject', message: 'must be a string, not a number' }],
      ],
      [
        'POST',
        '/v1/outbox',
        { message: { ...message, attachments: 'a.txt' } },
        [{ path: 'message.attachments', message: 'must be an array, not a string' }],
      ],
      [
        'POST',
        '/v1/outbox',
        { message: { ...message, attachments: [{ contentBase64: 'aGk=' }] } },
        [{ path: 'message.attachments.0.filename', message: 'is required: a string' }],
      ],
      // Named at the key that is wrong, not as the whole attachment "must be {...} with base64 content".
      [
        'POST',
        '/v1/outbox',
        { message: { ...message, attachments: [{ filename: '', contentBase64: 'aGk=' }] } },
        [
          {
            path: 'message.attachments.0.filename',
            message: 'must not be empty: the file name the recipient sees, e.g. report.pdf',
          },
        ],
      ],
      [
        'POST',
        '/v1/outbox',
        {
          message: { ...message, attachments: [{ filename: 'a.txt', contentBase64: 'aG!k' }] },
        },
        [
          {
            path: 'message.attachments.0.contentBase64',
            message:
              'must be base64: A-Z a-z 0-9 + / and = at the end (line breaks and spaces are taken); character 3 is none of them',
          },
        ],
      ],
      [
        'POST',
        '/v1/outbox',
        { message: { ...message, importance: 'urgent' } },
        [{ path: 'message.importance', message: 'must be one of low, normal, high' }],
      ],
      [
        'POST',
        '/v1/outbox',
        { message, options: { priority: 'high' } },
        [{ path: 'options.priority', message: 'must be a number, not a string' }],
      ],
      [
        'POST',
        '/v1/outbox/cancel',
        { filter: { tenant: '' } },
        [{ path: 'filter.tenant', message: 'must not be empty' }],
      ],
      [
        'POST',
        '/v1/outbox/cancel',
        { filter: { status: [] } },
        [{ path: 'filter.status', message: 'must hold at least 1 item' }],
      ],
      [
        'POST',
        '/v1/outbox/retry',
        { filter: { status: ['failed'] }, dryRun: 'yes' },
        [{ path: 'dryRun', message: 'must be true or false, not a string' }],
      ],
      [
        'POST',
        '/v1/outbox/retry',
        { filter: null },
        [{ path: 'filter', message: 'must be an object, not null' }],
      ],
    ]
    for (const [method, url, body, errors] of cases) {
      const r = await send(s.app, method, url, { token: s.tk, body })
      expect([url, body, r.status, (r.body as { errors?: unknown }).errors]).toEqual([
        url,
        body,
        400,
        errors,
      ])
    }
  })
})

test('an id or a limit refused for its form says the form, not that the value is no number (01, 050 are numbers)', async () => {
  const ID_FORM =
    'must be a row id: a whole number from 1, in decimal digits with no sign or leading zero (e.g. 42)'
  const LIMIT_FORM =
    'must be a whole number from 1 to 200 in decimal digits, no sign, space or leading zero'
  const cases: [string, string, string][] = [
    ['GET', '/v1/outbox/01', `id: ${ID_FORM}`],
    ['GET', '/v1/outbox/abc', `id: ${ID_FORM}`],
    ['POST', '/v1/outbox/-1/cancel', `id: ${ID_FORM}`],
    ['GET', '/v1/outbox/0', `id: ${ID_FORM}`],
    [
      'GET',
      '/v1/outbox/9223372036854775808',
      'id: must be at most 9223372036854775807 (no row has a larger id)',
    ],
    ['GET', '/v1/outbox?limit=050', `limit: ${LIMIT_FORM} (given "050")`],
    ['GET', '/v1/outbox?limit=%2B5', `limit: ${LIMIT_FORM} (given "+5")`],
    ['GET', '/v1/outbox?limit=abc', `limit: ${LIMIT_FORM} (given "abc")`],
  ]
  for (const [method, url, detail] of cases) {
    const r = await send(s.app, method, url, { token: s.tk })
    expect([url, r.status, (r.body as { detail: string }).detail]).toEqual([url, 400, detail])
  }
})

test("a bulk filter's status the route does not act on says which route does, and quotes a word no status is", async () => {
  const cases: [string, string, string][] = [
    [
      '/v1/outbox/cancel',
      'failed',
      'must be one of pending, sending: failed and cancelled rows are retried, POST /v1/outbox/retry',
    ],
    [
      '/v1/outbox/cancel',
      'sent',
      'must be one of pending, sending: a sent row is neither cancelled nor retried',
    ],
    [
      '/v1/outbox/retry',
      'pending',
      'must be one of failed, cancelled: pending and sending rows are cancelled, POST /v1/outbox/cancel',
    ],
    ['/v1/outbox/retry', 'bogus', 'must be one of failed, cancelled (given "bogus")'],
    // A word an object's prototype holds is no status either: quoted, not read as a route's words.
    ['/v1/outbox/cancel', 'toString', 'must be one of pending, sending (given "toString")'],
    ['/v1/outbox/retry', 'constructor', 'must be one of failed, cancelled (given "constructor")'],
  ]
  for (const [url, status, message] of cases) {
    const r = await send(s.app, 'POST', url, {
      token: s.tk,
      body: { filter: { status: [status] }, dryRun: true },
    })
    expect([url, status, r.status, (r.body as { errors?: unknown }).errors]).toEqual([
      url,
      status,
      400,
      [{ path: 'filter.status.0', message }],
    ])
  }
})

test('a body that is no JSON says where it breaks and what JSON wants there; an empty one says it is empty', async () => {
  const A_VALUE =
    'expected a value: an object, an array, a string in double quotes, a number, true, false or null'
  const cases: [string, string, string][] = [
    [
      '/v1/outbox',
      '{"message":{"to":"ada@example.com",}}',
      'is not valid JSON at line 1, column 36: expected a property name in double quotes',
    ],
    [
      '/v1/outbox',
      "{'message': {}}",
      'is not valid JSON at line 1, column 2: expected a property name in double quotes',
    ],
    [
      '/v1/outbox/cancel',
      '{"filter": {"ids": ["1"]}}\n x',
      'is not valid JSON at line 2, column 2: expected nothing after the value',
    ],
    // Columns count characters as an editor shows them: each emoji (two UTF-16 units) is one.
    [
      '/v1/outbox',
      '{"message":{"subject":"😀😀😀😀",}}',
      'is not valid JSON at line 1, column 30: expected a property name in double quotes',
    ],
    // Nested past what a scan can follow (the parser gave up on it too): no 500, no place named.
    [
      '/v1/outbox',
      '['.repeat(200_000),
      'is not valid JSON (nested too deeply to say where it breaks)',
    ],
    [
      '/v1/outbox',
      '',
      'is empty: send a JSON object, {"message": {...}, "options": {...}} (options optional)',
    ],
    [
      '/v1/outbox/retry',
      ' \n',
      'is empty: send a JSON object, {"filter": {...}, "dryRun": ..., "limit": ...} (dryRun and limit optional)',
    ],
    // JSON's blanks are space, tab, CR and LF alone (RFC 8259): a no-break space, or a byte order
    // mark past the first, is no blank, so such a body is no JSON rather than empty.
    ['/v1/outbox', '\u00a0', `is not valid JSON at line 1, column 1: ${A_VALUE}`],
    ['/v1/outbox', ' \ufeff\ufeff', `is not valid JSON at line 1, column 2: ${A_VALUE}`],
  ]
  for (const [url, body, message] of cases) {
    const r = await send(s.app, 'POST', url, {
      token: s.tk,
      body,
      headers: { 'content-type': 'application/json' },
    })
    expect([url, body, problemOf(r)]).toEqual([
      url,
      body,
      {
        status: 400,
        type: 'urn:outbox-mailer:problem:validation_failed',
        detail: `the body ${message}`,
        errors: [{ path: '(root)', message }],
      },
    ])
  }
  // A byte order mark opening the body is dropped, as RFC 8259 lets a parser: the JSON after it is read.
  const bom = await send(s.app, 'POST', '/v1/outbox', {
    token: s.tk,
    body: `\ufeff${JSON.stringify({ message })}`,
    headers: { 'content-type': 'application/json' },
  })
  expect(bom.status).toBe(201)
})

test('a JSON number too large to read (1e400 parses as Infinity) is named so, not "must be a number, not a number"', async () => {
  const msg = JSON.stringify(message)
  const cases: [string, string, { path: string; message: string }[]][] = [
    [
      '/v1/outbox',
      `{"message":${msg},"options":{"priority":1e400}}`,
      [
        {
          path: 'options.priority',
          message:
            'must be a number, not a number too large to read (1e400 and the like: past ±1.8e308)',
        },
      ],
    ],
    [
      '/v1/outbox',
      `{"message":${msg},"options":{"maxAttempts":-1e999}}`,
      [
        {
          path: 'options.maxAttempts',
          message:
            'must be a number, not a number too large to read (1e400 and the like: past ±1.8e308)',
        },
      ],
    ],
    [
      '/v1/outbox/cancel',
      '{"filter":{"ids":["1"]},"limit":1e400}',
      [
        {
          path: 'limit',
          message:
            'must be a number, not a number too large to read (1e400 and the like: past ±1.8e308)',
        },
      ],
    ],
  ]
  for (const [url, body, errors] of cases) {
    const r = await send(s.app, 'POST', url, { token: s.tk, body })
    expect([url, body, r.status, (r.body as { errors?: unknown }).errors]).toEqual([
      url,
      body,
      400,
      errors,
    ])
  }
})

// Some 380 requests one after the other, some of them enqueues: 2-3.6 s quiet, 22.6 s and a
// timeout at 30 s under CI's heaviest load. It waits on nothing but them: its bound is one for
// their count on a loaded machine.
test('no field of any route, sent a value of another type, answers in zod default wording', async () => {
  const wrongs: unknown[] = [5, 'x', true, null, [], {}, '', 1.5]
  const msgFields = ['to', 'cc', 'bcc', 'replyTo', 'from', 'subject', 'text', 'html']
  const more = ['headers', 'attachments', 'importance']
  const optionFields = ['tenant', 'dedupeKey', 'correlationId', 'priority', 'maxAttempts']
  const filterFields = ['status', 'tenant', 'createdFrom', 'createdTo', 'dedupeKey', 'ids']
  const defaults: string[] = []
  const check = async (url: string, body: unknown) => {
    const r = await send(s.app, 'POST', url, { token: s.tk, body })
    const errors = (r.body as { errors?: { path: string; message: string }[] }).errors ?? []
    for (const e of errors) {
      if (ZOD_DEFAULT.test(e.message))
        defaults.push(`${JSON.stringify(body)} ${e.path}: ${e.message}`)
    }
  }
  for (const w of wrongs) {
    await check('/v1/outbox', w)
    await check('/v1/outbox', { message: w })
    await check('/v1/outbox', { message, options: w })
    for (const f of [...msgFields, ...more])
      await check('/v1/outbox', { message: { ...message, [f]: w } })
    await check('/v1/outbox', { message: { ...message, headers: { 'X-A': w } } })
    await check('/v1/outbox', { message: { ...message, attachments: [w] } })
    for (const f of ['filename', 'contentBase64', 'contentType', 'contentId', 'isInline']) {
      const file = { filename: 'a.txt', contentBase64: 'aGk=', [f]: w }
      await check('/v1/outbox', { message: { ...message, attachments: [file] } })
    }
    for (const f of optionFields) await check('/v1/outbox', { message, options: { [f]: w } })
    for (const url of ['/v1/outbox/cancel', '/v1/outbox/retry']) {
      await check(url, w)
      await check(url, { filter: w })
      await check(url, { filter: { status: ['failed'] }, dryRun: w, limit: w })
      for (const f of filterFields) await check(url, { filter: { [f]: w } })
      await check(url, { filter: { status: [w] } })
      await check(url, { filter: { ids: [w] } })
    }
  }
  expect(defaults).toEqual([])
}, 120_000)

/** The problems of a list and of a bulk action of `route` filtered by `param` = `value`. */
async function listAndBulkErrors(param: string, value: string, route: string) {
  const list = await send(s.app, 'GET', `/v1/outbox?${param}=${encodeURIComponent(value)}`, {
    token: s.tk,
  })
  const bulk = await send(s.app, 'POST', route, {
    token: s.tk,
    body: { filter: { [param]: value } },
  })
  return [problemOf(list).errors, problemOf(bulk).errors]
}

test('a tenant or correlationId filter longer than any row holds (200 characters, as enqueue and the table hold them) is a 400 naming the limit, not an empty page or a bulk action on nothing', async () => {
  for (const [param, what, value, route] of [
    ['tenant', 'tenant', 'é'.repeat(201), '/v1/outbox/cancel'],
    ['correlationId', 'correlation id', 'c'.repeat(250), '/v1/outbox/retry'],
  ] as const) {
    const message = `must be at most 200 characters, as every row's ${what} is (enqueue takes 1-200): one of ${[...value].length} matches no row`
    expect(await listAndBulkErrors(param, value, route)).toEqual([
      [{ path: param, message }],
      [{ path: `filter.${param}`, message }],
    ])
  }
  // Counted in characters, as the table's check counts them: 200 emoji (400 UTF-16 units) may match.
  const emoji = await send(
    s.app,
    'GET',
    `/v1/outbox?tenant=${encodeURIComponent('😀'.repeat(200))}`,
    { token: s.tk },
  )
  expect(emoji.status).toBe(200)
})

test('a sender refused is named message.from, one address, not a list entry; a list in one address string is told to be a JSON list', async () => {
  const LIST =
    'is not a valid e-mail address: it holds 2 addresses separated by , or ;: give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]'
  const cases: [Record<string, unknown>, { path: string; message: string }][] = [
    [{ from: 'x' }, { path: 'message.from', message: 'is not a valid e-mail address' }],
    [
      { from: { address: 'x' } },
      { path: 'message.from.address', message: 'is not a valid e-mail address' },
    ],
    // A domain that is no IDN, refused before SQL (idn-addresses.ts), is named alike.
    [
      { from: 'ann@xn--zz.bücher.example' },
      {
        path: 'message.from',
        message:
          'is not a valid e-mail address: its domain is no internationalized domain name (IDNA, UTS #46)',
      },
    ],
    [{ to: 'ada@example.com, bob@example.com' }, { path: 'message.to', message: LIST }],
    [
      { to: 'ada@example.com', from: 'Ada <ada@example.com>; bob@example.com' },
      {
        path: 'message.from',
        message:
          'is not a valid e-mail address: it holds 2 addresses separated by , or ;: from is one address, the sender (to, cc and bcc take a JSON list)',
      },
    ],
  ]
  for (const [fields, error] of cases) {
    const r = await send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body: { message: { ...message, ...fields } },
    })
    expect([fields, problemOf(r).status, problemOf(r).errors]).toEqual([fields, 400, [error]])
  }
})

test('a recipient whose display name holds another address is a 400 saying how many it holds, as a list in one string is; a quoted name is taken', async () => {
  // "Ann <ann@…>, Bob <bob@…>" is refused as a list in one string, alone or as a list's entry;
  // without its separator it said only "is not a valid e-mail address" (sql/0168).
  const LIST =
    'is not a valid e-mail address: it holds 2 addresses separated by , or ;: give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]'
  const NAMED =
    'is not a valid e-mail address: it holds 2 addresses, 1 in its display name: give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]; a display name meant to show an address goes in double quotes'
  const cases: [Record<string, unknown>, { path: string; message: string }][] = [
    [{ to: 'Ann <ann@example.com>, Bob <bob@example.com>' }, { path: 'message.to', message: LIST }],
    [
      { to: ['Ann <ann@example.com>, Bob <bob@example.com>'] },
      { path: 'message.to.0', message: LIST },
    ],
    [{ to: 'Ann <ann@example.com> Bob <bob@example.com>' }, { path: 'message.to', message: NAMED }],
    [
      { cc: ['x@example.com', 'Ann ann@example.com <bob@example.com>'] },
      { path: 'message.cc.1', message: NAMED },
    ],
  ]
  for (const [fields, error] of cases) {
    const r = await send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body: { message: { ...message, ...fields } },
    })
    expect([fields, problemOf(r).status, problemOf(r).errors]).toEqual([fields, 400, [error]])
  }
  const r = await send(s.app, 'POST', '/v1/outbox', {
    token: s.tk,
    body: { message: { ...message, to: '"Ann <ann@example.com>, Bob" <bob@example.com>' } },
  })
  expect(r.status).toBe(201)
})

test('a lone recipient refused is named at its field, as it was sent (message.to, message.to.address), not as a list’s first entry', async () => {
  // A schema refusal of a lone object names message.to.address (zod's path): enqueue's and the
  // IDN conversion's refusals of the same value are named alike; a list's entries keep their index.
  const LIST =
    'is not a valid e-mail address: it holds 2 addresses separated by , or ;: give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]'
  const cases: [Record<string, unknown>, string, { path: string; message: string }][] = [
    [
      { to: 'x' },
      'mailer: message.to is not a valid e-mail address',
      { path: 'message.to', message: 'is not a valid e-mail address' },
    ],
    [
      { to: { address: 'x' } },
      'mailer: message.to.address is not a valid e-mail address',
      { path: 'message.to.address', message: 'is not a valid e-mail address' },
    ],
    [
      { to: ['x'] },
      'mailer: message.to[0] is not a valid e-mail address',
      { path: 'message.to.0', message: 'is not a valid e-mail address' },
    ],
    [
      { cc: 'ada@example.com; bob@example.com' },
      `mailer: message.cc ${LIST}`,
      { path: 'message.cc', message: LIST },
    ],
    [
      { replyTo: { address: 'ada@example.com', nick: 'A' } },
      'mailer: message.replyTo may only have the keys address and name',
      { path: 'message.replyTo', message: 'may only have the keys address and name' },
    ],
    [
      { bcc: { address: 'ann@xn--zz.bücher.example' } },
      'message.bcc.address: is not a valid e-mail address: its domain is no internationalized domain name (IDNA, UTS #46)',
      {
        path: 'message.bcc.address',
        message:
          'is not a valid e-mail address: its domain is no internationalized domain name (IDNA, UTS #46)',
      },
    ],
  ]
  for (const [fields, detail, error] of cases) {
    const r = await send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body: { message: { ...message, ...fields } },
    })
    const p = problemOf(r)
    expect([fields, p.status, p.detail, p.errors]).toEqual([fields, 400, detail, [error]])
  }
})
