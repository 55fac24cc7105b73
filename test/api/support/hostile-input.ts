// Hostile and malformed request parts for hostile-input.test.ts: JSON values and bodies, headers, query values and path ids (fast-check arbitraries).
import fc from 'fast-check'

// In every valid body: none may reach a log line, whatever the request did with it.
export const ADDRESS = 'mark53.ann@example.com'
export const SUBJECT = 'MARK53 subject of a hostile request'
export const TEXT = 'MARK53 body text never logged'
export const MARKS = [ADDRESS, 'MARK53']

/** A JSON value written as raw text: what JSON.stringify cannot write (1e309, -0, a lone surrogate escape). */
class Raw {
  constructor(readonly text: string) {}
}
type Value = Raw | null | boolean | number | string | Value[] | { [k: string]: Value }

export function write(v: Value): string {
  if (v instanceof Raw) return v.text
  if (Array.isArray(v)) return `[${v.map(write).join(',')}]`
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${write(x)}`)
      .join(',')}}`
  }
  return JSON.stringify(v)
}

const nested = (depth: number, open: string, close: string) =>
  new Raw(open.repeat(depth) + close.repeat(depth))

// Wrong types at any field, numbers JSON's readers disagree on, text Postgres cannot store, depth.
const hostileValue: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom<Value>(null, true, false, 0, -1, 1.5, '', ' ', [], {}, [null], { a: 1 }),
  fc.constantFrom<Value>(
    new Raw('1e309'),
    new Raw('-1e309'),
    new Raw('-0'),
    new Raw('9007199254740993'),
    new Raw('-9007199254740993'),
    new Raw('1e-400'),
    new Raw('123456789012345678901234567890'),
    new Raw('0.1e1'),
    new Raw('1E2'),
  ),
  fc.constantFrom<Value>(
    new Raw('"\\ud800"'),
    new Raw('"a\\udc00b"'),
    new Raw('"\\udbff\\udbff"'),
    new Raw('"\\u0000"'),
    new Raw('"ann@example.com\\u0000"'),
    'a\u0000b',
    'ann@example.com\r\nBcc: eve@example.com',
    '\u202eevil',
    '\ufeff',
    '%00',
    'x'.repeat(10_000),
    'ä'.repeat(3_000),
  ),
  fc.constantFrom<Value>(
    nested(64, '[', ']'),
    nested(5_000, '[', ']'),
    nested(50_000, '[', ']'),
    new Raw(`${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`),
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.oneof(fc.integer(), fc.double()).filter(Number.isFinite),
)

// Values of the right type at the edge of what a field takes, by the field's name: what passes the
// schema's types and reaches Postgres (a timestamp it cannot hold, a number past an int, an address).
const TIMESTAMPS = [
  '2030-02-30T00:00:00Z',
  '2030-01-01T24:00:00Z',
  '2030-12-31T23:59:60Z',
  '0000-01-01T00:00:00Z',
  '0001-01-01T00:00:00Z',
  '4713-01-01T00:00:00Z BC',
  '294277-01-01T00:00:00Z',
  '99999-01-01T00:00:00Z',
  '2030-01-01T00:00:00+15:59',
  '2030-01-01T00:00:00+16:00',
  '2030-01-01T00:00:00-99',
  '2030-01-01T00:00:00.1234567891Z',
  '2030-01-01T00:00Z',
  '2030-01-01 00:00+01',
  '2030-01-01',
  'infinity',
  '-infinity',
  'epoch',
  'now',
  'today',
  'allballs',
  '2030-01-01T00:00:00Z\u0000',
  '\u0032030-01-01T00:00:00Z',
  '１２３',
]
const NUMBERS: Value[] = [
  0,
  -1,
  1,
  100,
  101,
  -100,
  -101,
  0.5,
  2147483647,
  2147483648,
  -2147483649,
  9007199254740991,
  1e20,
  -1e20,
  1.7976931348623157e308,
  5e-324,
  new Raw('-0'),
  new Raw('9007199254740993'),
  new Raw('1e309'),
  new Raw('100.0'),
  new Raw('1E2'),
]
const ADDRESSES = [
  'ann@example.com',
  '"ann"@example.com',
  '"a\\"b"@example.com',
  'ann@[127.0.0.1]',
  'ann@[IPv6:::1]',
  'ann@localhost',
  'ann@-x.example',
  'ann@x..example',
  'ann@xn--.example',
  'ann@xn--zz-zzz.example',
  'ann@bücher.example',
  'ann@\u200b.example',
  'ann@\ufffd.example',
  'ann@example.com.',
  `${'a'.repeat(65)}@example.com`,
  `ann@${'b'.repeat(64)}.example`,
  `ann@${'b.'.repeat(130)}example`,
  'Ann <ann@example.com>',
  'Ann <ann@example.com>, bob@example.com',
  '"Doe, John" <j@example.com>',
  '<ann@example.com>',
  'Ann <>',
  '=?utf-8?q?x?= <ann@example.com>',
  'ann@example.com\r\nBcc: eve@example.com',
  '@',
  'ann@',
  '@example.com',
  'ann @example.com',
  'ännä@example.com',
  'ann+tag@example.com',
]
const TEXTS = [
  '',
  ' ',
  '\t',
  'x'.repeat(998),
  'x'.repeat(999),
  'line\r\nBcc: eve@example.com',
  '\u0007bell',
  '\u007f',
  '\u2028\u2029',
  // Blanks outside ASCII (0175's class), and what only looks blank: a body or none, alike in
  // TypeScript and SQL, or one is taken that the worker's render then fails (invalid_message).
  '\u00a0',
  '\u3000',
  '\u0085',
  '\u200b\ufeff',
  '\u3164',
  '\u00a0x\u00a0',
  '\ud83d\ude00',
  '=?utf-8?b?AAAA?=',
  '{{x}}',
  '\\',
]
const edge = (values: readonly Value[]) => fc.constantFrom<Value>(...values)
const quoted = (values: readonly string[]) => values.map((v) => new Raw(JSON.stringify(v)))
const EDGES: Record<string, fc.Arbitrary<Value>> = {
  time: edge(quoted(TIMESTAMPS)),
  number: edge(NUMBERS),
  address: edge(quoted(ADDRESSES)),
  text: edge(quoted(TEXTS)),
  base64: edge([
    '',
    '=',
    'TQ==',
    'TQ',
    'T',
    'TUFS\nSzUz',
    'TUFS SzUz',
    '====',
    'A'.repeat(4_000_001 - (4_000_001 % 4)),
  ]),
  contentType: edge([
    'text/plain',
    'text/plain; charset=utf-8',
    'text',
    '/',
    'a/b/c',
    'text/plain\r\nX: y',
    'x'.repeat(300),
  ]),
  headerName: edge(['X-A', 'x-a', 'X-', 'Bcc', 'X-A ', 'X-\u00e4', `X-${'a'.repeat(71)}`]),
  id: edge(['0', '-1', '01', '9223372036854775807', '9223372036854775808', '1.0', 1, 'x']),
  status: edge([
    'pending',
    'sending',
    'sent',
    'failed',
    'cancelled',
    'PENDING',
    'pending ',
    'held',
    '',
  ]),
  bool: edge([true, false, 'true', 0, 1]),
  key: edge(
    quoted([
      'k',
      '',
      ' ',
      'k'.repeat(500),
      'k'.repeat(501),
      'a:b.c_d-e',
      'acme\u0000',
      'ä',
      'default',
    ]),
  ),
}
const TIME_FIELDS = new Set([
  'sendAt',
  'expiresAt',
  'createdFrom',
  'createdTo',
  'sentFrom',
  'sentTo',
])
const NUMBER_FIELDS = new Set(['priority', 'maxAttempts', 'limit'])
const ADDRESS_FIELDS = new Set(['to', 'cc', 'bcc', 'replyTo', 'from', 'address'])
const KEY_FIELDS = new Set(['tenant', 'dedupeKey', 'correlationId', 'lastErrorCode', 'template'])

/** The edge values of a field by its name (its last key; an index, its list's). */
function edgesOf(path: (string | number)[]): fc.Arbitrary<Value> {
  const name = String(path.findLast((p) => typeof p === 'string') ?? '')
  if (TIME_FIELDS.has(name)) return EDGES.time!
  if (NUMBER_FIELDS.has(name)) return EDGES.number!
  if (ADDRESS_FIELDS.has(name)) return EDGES.address!
  if (KEY_FIELDS.has(name)) return EDGES.key!
  if (name === 'contentBase64') return EDGES.base64!
  if (name === 'contentType') return EDGES.contentType!
  if (name === 'ids') return EDGES.id!
  if (name === 'status') return EDGES.status!
  if (name === 'dryRun') return EDGES.bool!
  return EDGES.text!
}

export type Body = Record<string, Value>
const message = (): Body => ({
  to: [ADDRESS, { address: ADDRESS, name: 'Ann' }],
  cc: ADDRESS,
  replyTo: ADDRESS,
  subject: SUBJECT,
  text: TEXT,
  html: `<p>${TEXT}</p>`,
  headers: { 'X-Mark': TEXT },
  attachments: [{ filename: 'a.txt', contentBase64: 'TUFSSzUz', contentType: 'text/plain' }],
  importance: 'high',
})
export const ENQUEUE = (): Body => ({
  message: message(),
  options: {
    tenant: 'acme',
    dedupeKey: 'k',
    sendAt: '2030-01-01T00:00:00Z',
    expiresAt: '2031-01-01T00:00:00Z',
    priority: 1,
    maxAttempts: 3,
    correlationId: 'c-1',
  },
})
// The least a message holds: a field at its edge is then the message's one text, subject or address.
export const PLAIN_ENQUEUE = (): Body => ({
  message: { to: ADDRESS, subject: SUBJECT, text: TEXT },
  options: { dedupeKey: 'k' },
})
export const filter = (status: string): Body => ({
  filter: {
    status: [status],
    tenant: 'acme',
    createdFrom: '2020-01-01T00:00:00Z',
    createdTo: '2040-01-01T00:00:00Z',
    dedupeKey: 'k',
    correlationId: 'c',
    lastErrorCode: 'x',
    template: 't',
    ids: ['1', '2'],
  },
  dryRun: false,
  limit: 10,
})

/** Every path (keys and indexes) inside a body, the root's "" first. */
function pathsOf(v: Value, at: (string | number)[] = []): (string | number)[][] {
  const out = [at]
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...pathsOf(x, [...at, i]))
  } else if (v !== null && typeof v === 'object' && !(v instanceof Raw)) {
    for (const [k, x] of Object.entries(v)) out.push(...pathsOf(x, [...at, k]))
  }
  return out
}

function replaced(v: Value, path: (string | number)[], by: Value): Value {
  if (path.length === 0) return by
  const [head, ...rest] = path as [string | number, ...(string | number)[]]
  if (Array.isArray(v)) return v.map((x, i) => (i === head ? replaced(x, rest, by) : x))
  // A path into a value replaced already by one that holds nothing: that value stays.
  if (v === null || typeof v !== 'object' || v instanceof Raw) return v
  const o = v
  return { ...o, [head]: replaced(o[head] ?? null, rest, by) }
}

// A body's text: one field replaced, a key added beside it, or a key given twice.
export const mutatedBody = (base: () => Body) =>
  fc
    .record({
      at: fc.nat(),
      value: hostileValue,
      how: fc.constantFrom('replace', 'replace', 'replace', 'add', 'twice'),
      key: fc.constantFrom('zz', '__proto__', 'constructor', 'to', 'filter', ''),
    })
    .map(({ at, value, how, key }) => {
      const b = base()
      const paths = pathsOf(b)
      const path = paths[at % paths.length]!
      if (how === 'replace') return write(replaced(b, path, value))
      // Added beside the field, inside the object holding it (or the root's).
      const parent = path.slice(0, -1)
      if (how === 'add') {
        const holder = parent.reduce<Value>((o, k) => (o as Record<string, Value>)[k]!, b)
        if (holder === null || typeof holder !== 'object' || Array.isArray(holder)) {
          return write(replaced(b, path, value))
        }
        return write(replaced(b, [...parent, key], value))
      }
      // A key written twice: the text of the object with its first key repeated, the later hostile.
      const text = write(b)
      return text.replace(/^\{("[^"]+"):/, (_, k: string) => `{${k}:${write(value)},${k}:`)
    })

// A body with one to three fields set to an edge value of their kind (and a header named oddly).
export const edgeBody = (base: () => Body) =>
  fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 3 }).chain((picks) => {
    const b = base()
    const paths = pathsOf(b).filter((p) => p.length > 0)
    if (paths.length === 0) return fc.constant(write(b))
    const chosen = picks.map(([at]) => paths[at % paths.length]!)
    return fc.tuple(...chosen.map((p) => edgesOf(p)), EDGES.headerName!).map((values) => {
      let out: Value = b
      chosen.forEach((p, i) => {
        out = replaced(out, p, values[i]!)
      })
      const m = (out as Body).message
      if (picks[0]![1] % 4 === 0 && m && typeof m === 'object' && !Array.isArray(m)) {
        out = replaced(out, ['message', 'headers'], { [String(values.at(-1))]: 'v' })
      }
      return write(out)
    })
  })

// The bodies a JSON reader may trip on before any field is read.
export const brokenBody = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'null',
    '[]',
    '"text"',
    '0',
    '{',
    '{"message":',
    '{"a":1}}',
    '\ufeff{}',
    '{}\u0000',
    nested(200_000, '[', ']').text,
    `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`,
    `{"message":${'['.repeat(300_000)}`,
    `{"x":"${'\\'.repeat(10_001)}"}`,
    '{"message":{"to":"a@b.c"},"message":{"to":"d@e.f"}}',
  ),
  fc.string({ unit: 'binary', maxLength: 60 }),
)

// Headers a client may get wrong: the body's type and coding, the token, the key, the request id.
export const contentType = fc.constantFrom<string | null>(
  null,
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset="UTF-8"',
  'application/json; charset=iso-8859-1',
  'application/json; charset=utf-16',
  'application/json;;;',
  'application/merge-patch+json',
  'application/problem+json',
  'text/json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/jsonx',
  '*/*',
  'application',
  '',
)
// Most cases keep every header right, so the one made wrong is the one answered.
const rarely = (...values: string[]) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom(...values) },
  )
export const extraHeaders = fc
  .record({
    authorization: rarely(
      'TWICE',
      'Bearer',
      'Bearer ',
      'bearer TOKEN',
      'Bearer  TOKEN',
      'Basic dXNlcjpwYXNz',
      'Bearer TOKEN.x',
      `Bearer ${'a'.repeat(10_240)}`,
      'Bearer e30.e30.',
      'Bearer \u00ff\u00fe',
    ),
    'idempotency-key': rarely(
      '',
      ' ',
      'k, k',
      'k'.repeat(10_240),
      'k'.repeat(501),
      '\u00e9t\u00e9',
      'k\tk',
      'ok-key',
    ),
    'content-encoding': rarely('gzip', 'br', 'identity', 'x-garbage', ''),
    'x-request-id': rarely('', 'x'.repeat(10_240), '\u00ff', '../../etc'),
    'content-length': rarely('0', '-1', '99999999999999999999'),
  })
  .map(
    (h) =>
      Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<
        string,
        string
      >,
  )

// Query values: percent-encoding errors, NUL, a lone surrogate's UTF-8 (CESU), huge numbers, length.
const queryValue = fc.oneof(
  fc.constantFrom(
    '',
    '%',
    '%Z',
    '%ZZ',
    '%E0%A4%A',
    '%00',
    'a%00b',
    '%ED%A0%80',
    '%C0%AF',
    '%FF',
    '%2B01',
    '1e309',
    '-0',
    '9007199254740993',
    '-1',
    '0',
    '00',
    '1.5',
    '+1',
    '0x10',
    '%20',
    'x'.repeat(10_000),
    '%F0%9F%98%80'.repeat(1_000),
    'pending',
    'failed,cancelled',
    'newest',
    'oldest',
    '2030-01-01T00:00:00Z',
    '2030-01-01T00:00:00%2B99',
    '99999-01-01T00:00:00Z',
    '2030-02-30T00:00:00Z',
    'infinity',
    '-infinity',
    'epoch',
    'now',
    'allballs',
  ),
  fc.string({ unit: 'binary', maxLength: 30 }).map(encodeURIComponent),
  // Cursors: valid base64url of garbage, of a prefix with a bad id, and not base64 at all.
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64url')),
  fc
    .constantFrom(
      'o1:',
      'a1:',
      'o1:0',
      'o1:-1',
      'o1:01',
      'o1:1 ',
      'o1:9223372036854775807',
      'o1:9223372036854775808',
      'a1:99999999999999999999999',
      'o1:1\u0000',
      'o1:\ud800',
      'x1:5',
      'o1:1e3',
    )
    .map((s) => Buffer.from(s).toString('base64url')),
  fc.constantFrom('!!!!', 'a', '====', 'b2', 'o1:5', '%2F%2F'),
)
export const LIST_PARAMS = [
  'status',
  'tenant',
  'createdFrom',
  'createdTo',
  'sentFrom',
  'sentTo',
  'dedupeKey',
  'correlationId',
  'lastErrorCode',
  'template',
  'limit',
  'cursor',
  'order',
  'db',
  'zz',
  '',
  '%ZZ',
  'status%00',
] as const
export const queryOf = (names: readonly string[]) =>
  fc
    .array(fc.tuple(fc.constantFrom(...names), queryValue), { minLength: 1, maxLength: 4 })
    .map((ps) => ps.map(([n, v]) => `${n}=${v}`).join('&'))

// Path ids: not ids, ids past a bigint, and malformed percent-encoding in the path itself.
export const idSegment = fc.oneof(
  fc.constantFrom(
    '0',
    '-1',
    '01',
    '1e3',
    '1.0',
    '+1',
    ' 1',
    '%201',
    '9223372036854775807',
    '9223372036854775808',
    '9'.repeat(1_000),
    '1'.repeat(20_000),
    '%',
    '%ZZ',
    '%E0%A4%A',
    '%00',
    '1%00',
    '%ED%A0%80',
    '%FF',
    '%2F',
    '..',
    '%2E%2E',
    '%EF%BC%91',
    'null',
    'undefined',
    '__proto__',
  ),
  fc.string({ unit: 'binary', maxLength: 20 }).map(encodeURIComponent),
)
