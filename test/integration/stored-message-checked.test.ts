// Rows stored without today's enqueue checks (an older binary's enqueue_email, a direct insert), and what templates render, sent by the file and Graph transports.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { systemClock } from '../../src/clock.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { AddressRefused, addressRefusal } from '../../src/outbox/address-refusal.ts'
import { renderLease } from '../../src/outbox/render.ts'
import { requeueOutbox } from '../../src/outbox/requeue.ts'
import type { Sender } from '../../src/outbox/sender.ts'
import { createFileSender } from '../../src/transport/file-sender.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { claimedLease } from '../support/claimed-lease.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, rowOf, type TestEngine } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'
import {
  type FakeGraph,
  generateTestCertificate,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let dir: string
let cert: TestCertificate
let engine: TestEngine | null = null
let graph: FakeGraph | null = null

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outbox-stored-'))
  cert = await generateTestCertificate()
})
afterEach(async () => {
  await engine?.stop()
  await graph?.stop()
  engine = null
  graph = null
  for (const f of await readdir(dir)) await rm(join(dir, f))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const EVIL = '\r\nX-Evil: 1'
/** A message as enqueue_email normalises it: recipients are arrays of {address, name?}. */
const stored = {
  to: [{ address: 'rcpt@example.com' }],
  cc: [],
  bcc: [],
  replyTo: [],
  subject: 'Hello',
  text: 'Hi',
}

/** Inserts the row as an older binary's enqueue_email (or a direct insert) stored it, unchecked. */
async function insertStored(message: Record<string, unknown>): Promise<string> {
  const r = await t.pool.query<{ id: string }>(
    'insert into mailer.email_outbox (message) values ($1::jsonb) returning id',
    [JSON.stringify(message)],
  )
  return r.rows[0]!.id
}

/** Enqueues the message with today's mailer.enqueue_email: what it takes is a valid row. */
async function enqueued(message: Record<string, unknown>): Promise<string> {
  const r = await t.pool.query<{ id: string }>('select mailer.enqueue_email($1::jsonb) as id', [
    JSON.stringify(message),
  ])
  return r.rows[0]!.id
}

/**
 * A row a trigger stored for template `t`, which holds `template`'s fields over a plain one. One
 * the table refuses since sql/0031 is written as a release before it stored it (its check off).
 */
async function insertTemplated(
  template: {
    subject?: string
    text?: string | null
    html?: string | null
    to?: readonly string[]
    cc?: readonly string[]
    from?: string
    before0031?: boolean
  },
  sourceRow: Record<string, unknown>,
): Promise<string> {
  const c = await t.pool.connect()
  try {
    await c.query('begin')
    if (template.before0031)
      await c.query('alter table mailer.templates disable trigger templates_checked')
    await c.query(
      `insert into mailer.templates (name, subject, text_body, html_body, to_addresses, cc_addresses, from_address)
       values ('t', $1, $5, $6, $2, $3, $4)
       on conflict (name) do update
         set subject = excluded.subject, text_body = excluded.text_body,
             html_body = excluded.html_body, to_addresses = excluded.to_addresses,
             cc_addresses = excluded.cc_addresses, from_address = excluded.from_address`,
      [
        template.subject ?? 'Hello',
        template.to ?? ['rcpt@example.com'],
        template.cc ?? [],
        template.from ?? null,
        template.text === undefined ? 'Hi' : template.text,
        template.html ?? null,
      ],
    )
    if (template.before0031)
      await c.query('alter table mailer.templates enable trigger templates_checked')
    await c.query('commit')
  } finally {
    c.release()
  }
  const r = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (template, source_row) values ('t', $1::jsonb) returning id`,
    [JSON.stringify(sourceRow)],
  )
  return r.rows[0]!.id
}

async function fileTransport(): Promise<Sender> {
  return createFileSender(dir)
}

async function graphTransport(): Promise<Sender> {
  graph = await startFakeGraph({ certificates: [cert.certPem] })
  return createGraphTransport(
    {
      tenantId: graph.tenantId,
      clientId: graph.clientId,
      certificate: cert.certPem,
      certificateFile: null,
      privateKey: cert.keyPem,
      privateKeyFile: null,
      clientSecret: null,
      assertionAlgorithm: 'PS256',
      authorityUrl: graph.authorityUrl,
      apiUrl: graph.apiUrl,
      saveToSentItems: true,
      requestTimeoutMs: 5_000,
      mailboxLookup: false,
      ambiguousSendPolicy: 'resend',
    },
    'sender@example.com',
    { fetch, clock: systemClock, log: silentLogger },
  ).sender
}

/** Drains the row through the transport; answers how it settled and what reached the transport's far side. */
async function drained(id: string, transport: () => Promise<Sender>) {
  engine = createTestEngine(t, { deps: { sender: await transport() } })
  await engine.start()
  await engine.events.waitFor(settledFor(id))
  const row = await rowOf(t, id)
  return {
    status: row.status as string,
    code: row.last_error_code as string | null,
    error: row.last_error as string | null,
    written: (await readdir(dir)).filter((f) => f === `outbox-${id}.eml`).length,
    requested: graph?.requests.filter((r) => r.kind === 'sendMail').length ?? 0,
  }
}

test('a template that names no recipient is refused by the table, so none renders to nobody', async () => {
  const refused = await t.pool
    .query(`insert into mailer.templates (name, subject, text_body) values ('nobody', 'S', 'x')`)
    .then(
      () => null,
      (e: { code?: string; constraint?: string }) => [e.code, e.constraint],
    )
  expect(refused).toEqual(['23514', 'templates_recipient_check'])
})

const transports = [
  ['file', fileTransport],
  ['graph', graphTransport],
] as const

describe.each(transports)('the %s transport', (_name, transport) => {
  const failedNaming = (field: string, problem: string) => ({
    status: 'failed',
    code: 'invalid_message',
    error: expect.stringContaining(`${field} ${problem}`),
    written: 0,
    requested: 0,
  })

  test('an attachment contentType stored before 0020 that is no MIME type fails the row, unsent', async () => {
    for (const contentType of [`text/plain${EVIL}`, 'text', 5]) {
      const id = await insertStored({
        ...stored,
        attachments: [
          { filename: 'ok.txt', contentBase64: 'QQ==', contentType: 'text/plain' },
          { filename: 'a.txt', contentBase64: 'QQ==', contentType },
        ],
      })
      expect([contentType, await drained(id, transport)]).toEqual([
        contentType,
        failedNaming('message.attachments[1].contentType', 'must be a MIME type'),
      ])
      await engine?.stop()
      engine = null
    }
  })

  test('a control character in a file name or content id, a line break in a header value: the row fails, unsent', async () => {
    const png = { filename: 'logo.png', contentBase64: 'QQ==', contentType: 'image/png' }
    for (const [message, field, problem] of [
      [
        { attachments: [{ ...png, filename: `a${EVIL}.png` }] },
        'attachments[0].filename',
        'must not contain a control character',
      ],
      [
        { attachments: [{ ...png, contentId: `logo${EVIL}` }] },
        'attachments[0].contentId',
        'must not contain a control character',
      ],
      [{ attachments: [{ ...png, contentId: 7 }] }, 'attachments[0].contentId', 'must be a string'],
      [{ attachments: [{ filename: 'a.txt' }] }, 'attachments[0]', 'must be {"filename"'],
      [{ headers: { 'X-Tag': `v${EVIL}` } }, 'headers.X-Tag', 'must be a one-line string'],
      [{ headers: { 'X-Tag': 'v\u001b[31m' } }, 'headers.X-Tag', 'must be a one-line string'],
      [{ headers: { 'X-Tag': 'v\u007f' } }, 'headers.X-Tag', 'must be a one-line string'],
    ] as const) {
      const id = await insertStored({ ...stored, ...message })
      expect([field, await drained(id, transport)]).toEqual([
        field,
        failedNaming(`message.${field}`, problem),
      ])
      await engine?.stop()
      engine = null
    }
  })

  test('an attachment whose content is not base64 fails the row, unsent', async () => {
    const png = { filename: 'logo.png', contentBase64: 'QQ==', contentType: 'image/png' }
    const problem =
      'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content'
    for (const [attachments, field] of [
      // The file transport wrote what Buffer.from made of it: garbage, marked sent.
      [[png, { ...png, contentBase64: 'not base64!' }], 'attachments[1]'],
      [[{ ...png, contentBase64: 'QQ==QQ==' }], 'attachments[0]'],
    ] as const) {
      const id = await insertStored({ ...stored, attachments })
      expect([field, await drained(id, transport)]).toEqual([
        field,
        failedNaming(`message.${field}`, problem),
      ])
      await engine?.stop()
      engine = null
    }
    // Wrapped at 76 as MIME does, padded, trailing newline: sent.
    const id = await insertStored({
      ...stored,
      attachments: [{ ...png, contentBase64: 'QUJD\r\nREVG\nRw==\n' }],
    })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
  })

  test('an attachment whose base64 is not whole groups of four fails the row, unsent', async () => {
    // Refused at enqueue since sql/0029 (Graph's decoder refuses it); the file transport wrote
    // what Buffer.from made of it and marked the row sent.
    const png = { filename: 'logo.png', contentBase64: 'QQ==', contentType: 'image/png' }
    for (const [content, chars] of [
      ['QUJDR', 5],
      ['QQ', 2],
      ['Q\r\nU=', 3],
    ] as const) {
      const id = await insertStored({
        ...stored,
        attachments: [png, { ...png, contentBase64: content }],
      })
      expect([content, await drained(id, transport)]).toEqual([
        content,
        failedNaming(
          'message.attachments[1].contentBase64',
          `must be whole groups of four base64 characters (pad the last with =); this holds ${chars}`,
        ),
      ])
      await engine?.stop()
      engine = null
    }
  })

  test('a body, importance or subject length enqueue refuses fails the row, unsent', async () => {
    for (const [message, field, problem] of [
      [{ text: null, html: null }, 'text', 'or message.html is required'],
      [{ text: undefined, html: null }, 'text', 'or message.html is required'],
      // "" is no body: stored before 0174, an empty mail is not sent either.
      [
        { text: '' },
        'text',
        'must not be empty ("" is no body): a message needs message.text or message.html',
      ],
      [
        { text: null, html: '' },
        'html',
        'must not be empty ("" is no body): a message needs message.text or message.html',
      ],
      // Nor is one of blanks only, stored before 0175 (blank-body.ts).
      [
        { text: ' \r\n\u00a0' },
        'text',
        'must not be empty ("" is no body): a message needs message.text or message.html',
      ],
      [
        { text: null, html: '\u200b\u3000' },
        'html',
        'must not be empty ("" is no body): a message needs message.text or message.html',
      ],
      [{ text: 5 }, 'text', 'must be a string'],
      [{ html: { b: 1 } }, 'html', 'must be a string'],
      [{ importance: 'urgent' }, 'importance', 'must be low, normal or high'],
      [{ subject: 'S'.repeat(999) }, 'subject', 'must be at most 998 characters'],
    ] as const) {
      const id = await insertStored({ ...stored, ...message })
      expect([field, await drained(id, transport)]).toEqual([
        field,
        failedNaming(`message.${field}`, problem),
      ])
      await engine?.stop()
      engine = null
    }
    // What enqueue takes is sent: 998 characters as SQL counts them (an emoji is one), an empty
    // text beside an html.
    for (const message of [
      { subject: '\u{1f4e7}'.repeat(998) },
      { subject: 'S'.repeat(998), text: '', html: '<p>Hi</p>', importance: 'high' },
      { text: undefined, html: '<p>Hi</p>', importance: null },
      // An empty body beside a file: the file is the mail (an invoice), as enqueue takes it (0174).
      {
        text: '',
        attachments: [
          { filename: 'invoice.pdf', contentBase64: 'JVBERi0=', contentType: 'application/pdf' },
        ],
      },
    ]) {
      const id = await insertStored({ ...stored, ...message })
      expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
      await engine?.stop()
      engine = null
    }
  })

  test('a subject of blanks other than spaces, as enqueue takes it, is sent', async () => {
    // enqueue trims spaces only (btrim): a no-break or an ideographic space is a subject to it.
    for (const subject of ['\u00a0', '\u3000', '\ufeff\u2003']) {
      const id = await enqueued({ ...stored, subject })
      expect([subject, await drained(id, transport)]).toEqual([
        subject,
        expect.objectContaining({ status: 'sent' }),
      ])
      await engine?.stop()
      engine = null
    }
  })

  test('an address as long as enqueue takes one, counted in characters as SQL counts them, is sent', async () => {
    // 212 characters (an emoji is one), 412 UTF-16 units: mailer.is_email_address takes it.
    const address = `${'\u{1f4e7}'.repeat(200)}@example.com`
    const id = await enqueued({ ...stored, to: [address] })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
  })

  test('headers enqueue refuses by name, number, shape or size fail the row, unsent', async () => {
    const name = 'must be an X- header name other than X-Outbox-Id and X-Correlation-Id'
    for (const [headers, field, problem] of [
      // The file transport wrote a second X-Outbox-Id, this one first; Graph dropped it.
      [{ 'x-outbox-id': '999' }, 'headers.x-outbox-id', name],
      [{ 'X-Correlation-Id': 'c' }, 'headers.X-Correlation-Id', name],
      [{ 'Reply-To': 'other@example.com' }, 'headers.Reply-To', name],
      [{ 'X-Tag: v\r\nBcc': 'other@example.com' }, 'headers.X-Tag: v\r\nBcc', name],
      [{ 'X-A': '1', 'X-B': '2', 'X-C': '3', 'X-D': '4' }, 'headers', 'may hold at most 3 headers'],
      [
        { 'X-A': 'a'.repeat(131_072), 'X-B': 'b'.repeat(131_072) },
        'headers',
        'must total at most 262144 bytes as "Name: value" lines',
      ],
      ['X-Tag: v', 'headers', 'must be an object of "X-Name": "value"'],
      [['v'], 'headers', 'must be an object of "X-Name": "value"'],
    ] as const) {
      const id = await insertStored({ ...stored, headers })
      expect([field, await drained(id, transport)]).toEqual([
        field,
        failedNaming(`message.${field}`, problem),
      ])
      await engine?.stop()
      engine = null
    }
    // Three X- headers, as enqueue takes them, are sent.
    const id = await insertStored({
      ...stored,
      headers: { 'X-A': '1', 'x-b': '2\t3', 'X-C-9': '' },
    })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
  })

  test('headers alike but for case, or a header past 256 KB with its subject and names, fail the row as enqueue refuses them (0086), unsent', async () => {
    // A transport sent the first of headers alike but for case and dropped the other without a
    // word; Exchange Online takes no header past 256 KB, which the X- headers alone no longer make.
    const history = []
    for (const [message, field, problem] of [
      [
        { ...stored, headers: { 'x-trace': 'b', 'X-Trace': 'a' } },
        'message.headers.X-Trace',
        'is the same header as x-trace (header names are case-insensitive): give one of them',
      ],
      [
        { ...stored, to: [{ address: 'rcpt@example.com', name: 'n'.repeat(262_144) }] },
        'message',
        'has a header of at least 262185 bytes (its subject, from, to, cc, replyTo and X- headers as lines): Exchange Online takes a message header of at most 262144 bytes (256 KB)',
      ],
    ] as const) {
      const id = await insertStored(message)
      expect([field, await drained(id, transport)]).toEqual([field, failedNaming(field, problem)])
      await engine?.stop()
      engine = null
      const { rows } = await t.pool.query(
        'select outcome, error_code from mailer.email_attempts where outbox_id = $1',
        [id],
      )
      history.push(...rows)
    }
    expect(history).toEqual([
      { outcome: 'failed', error_code: 'invalid_message' },
      { outcome: 'failed', error_code: 'invalid_message' },
    ])
    // Counted as enqueue counts it.
    const long = { ...stored, to: [{ address: 'rcpt@example.com', name: 'n'.repeat(262_144) }] }
    const counted = await t.pool.query('select mailer.header_lines_bytes($1::jsonb)::int as b', [
      JSON.stringify(long),
    ])
    expect(counted.rows[0].b).toBe(262_185)
    // At 256 KB, as enqueue takes it, the message is sent.
    const name = 'n'.repeat(262_144 - 'Subject: Hello\r\nTo:  <rcpt@example.com>\r\n'.length)
    const id = await insertStored({ ...stored, to: [{ address: 'rcpt@example.com', name }] })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
  })

  test('recipients inserted in enqueue_email’s input shapes are sent; any other shape fails the row, named', async () => {
    const id = await insertStored({
      to: 'rcpt@example.com',
      cc: { address: 'cc@example.com', name: 'Cc' },
      from: 'from@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
    await engine?.stop()
    engine = null
    const bad = await insertStored({ ...stored, to: ['ok@example.com', 5] })
    expect(await drained(bad, transport)).toEqual(
      failedNaming('message.to[1]', 'must be an address string or {"address","name"}'),
    )
  })

  test('recipients enqueue refuses by address or number fail the row, unsent', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.com`)
    const invalidAddress = 'is not a valid e-mail address'
    for (const [message, field, problem] of [
      [{ to: [], cc: [], bcc: [] }, 'to', 'is required: a message needs at least one recipient'],
      [{ to: null, cc: undefined }, 'to', 'is required: a message needs at least one recipient'],
      [{ to: ['not an address'] }, 'to[0]', invalidAddress],
      [{ cc: [{ address: 'a@example.com' }, { address: 'b@' }] }, 'cc[1].address', invalidAddress],
      // A lone value is named by its field as enqueue names it (sql/0168), from (one address) too
      // (0163), not as a list's entry.
      [{ replyTo: 'reply@example.com, other@example.com' }, 'replyTo', invalidAddress],
      [{ cc: { address: 'b@' } }, 'cc.address', invalidAddress],
      [{ from: { address: 'from@localhost' } }, 'from.address', invalidAddress],
      [{ from: 'not an address' }, 'from', invalidAddress],
      [{ from: 5 }, 'from', 'must be an address string or {"address","name"}'],
      // Named as enqueue names the first of several problems.
      [{ from: ['not an address'] }, 'from', 'must be a single address'],
      [
        { to: [], from: 'not an address' },
        'to',
        'is required: a message needs at least one recipient',
      ],
      [{ bcc: [`${'a'.repeat(310)}@example.com`] }, 'bcc[0]', invalidAddress],
      // Enqueue refuses them since 0043: the file transport wrote another address
      // ("ab@…", "ana <maria@…>").
      [{ to: ['a\u0001b@example.com'] }, 'to[0]', invalidAddress],
      [{ cc: [{ address: 'ana\u00a0maria@example.com' }] }, 'cc[0].address', invalidAddress],
      [{ from: { address: '\ufeffana@example.com' } }, 'from.address', invalidAddress],
      [{ to: many(300), cc: many(201) }, 'to', 'has too many recipients (at most 500'],
      [{ replyTo: many(501) }, 'replyTo', 'has too many addresses (at most 500)'],
    ] as const) {
      const id = await insertStored({ ...stored, ...message })
      expect([field, await drained(id, transport)]).toEqual([
        field,
        failedNaming(`message.${field}`, problem),
      ])
      await engine?.stop()
      engine = null
    }
    // As many as enqueue takes, padded with spaces as it trims them, are sent.
    const id = await insertStored({
      ...stored,
      to: many(250).map((a) => ` ${a} `),
      cc: undefined,
      bcc: [{ address: 'bcc@example.com ' }],
      replyTo: many(500),
    })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
  })

  test('a template that renders an empty subject or too many recipients fails the row, unsent; a long subject is cut', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.com`)
    for (const [template, row, problem] of [
      [{ subject: '{{name}}' }, { name: ' \r\n ' }, 'subject is empty after rendering'],
      [
        { to: many(300), cc: many(201), before0031: true },
        {},
        'hold 501 recipients; a message takes at most 500',
      ],
    ] as const) {
      const id = await insertTemplated(template, row)
      expect([problem, await drained(id, transport)]).toEqual([
        problem,
        {
          status: 'failed',
          code: 'template_error',
          error: expect.stringContaining(problem),
          written: 0,
          requested: 0,
        },
      ])
      await engine?.stop()
      engine = null
    }
    // As many recipients as a stored message may have are sent, and a subject a column made longer
    // than one may have is cut to 998 (an ellipsis last), not failed.
    const id = await insertTemplated(
      { subject: 'From {{name}}', to: many(300), cc: many(200) },
      { name: 'N'.repeat(1200) },
    )
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
  })

  test('a template whose bodies render blank fails the row with template_error, unsent; fixed and retried, it is rendered again and sent', async () => {
    // A form's empty note filled into the only body: an empty mail to the recipient, before.
    const id = await insertTemplated({ text: '{{note}}\n', html: '{{note}}' }, { note: null })
    expect(await drained(id, transport)).toEqual({
      status: 'failed',
      code: 'template_error',
      error:
        'text_body and html_body of template "t" are empty after rendering (nothing but blanks): a mail without a body is not sent',
      written: 0,
      requested: 0,
    })
    await engine?.stop()
    await graph?.stop()
    engine = null
    graph = null
    // The template holds the mail's own words now: the retry renders it as it stands.
    await t.pool.query(
      `update mailer.templates set text_body = 'You wrote no note.{{note}}', html_body = null where name = 't'`,
    )
    await requeueOutbox(t.db, id, null)
    const sent = await drained(id, transport)
    // drained() started a fake Graph for the graph transport (the narrowing above knows nothing of it).
    const g = graph as FakeGraph | null
    expect(sent).toMatchObject({ status: 'sent', written: g ? 0 : 1 })
    if (g) {
      const m = g.accepted[0]!.body.message as { body: unknown }
      expect(m.body).toEqual({ contentType: 'Text', content: 'You wrote no note.' })
    } else {
      expect(await readFile(join(dir, `outbox-${id}.eml`), 'utf8')).toContain('You wrote no note.')
    }
  })

  test("a template's html_body rendered blank beside a text_body that shows something: the text is the mail", async () => {
    // A form's empty note filled into the html alone: the recipient got the blank HTML and the text
    // was dropped (Graph), or a blank HTML part beside it (.eml).
    const id = await insertTemplated(
      { text: 'Thanks for writing.\n{{note}}', html: ' {{note}}\u00a0\n' },
      { note: null },
    )
    expect(await drained(id, transport)).toMatchObject({ status: 'sent', code: null })
    if (graph) {
      const m = graph.accepted[0]!.body.message as { body: unknown }
      expect(m.body).toEqual({ contentType: 'Text', content: 'Thanks for writing.\n' })
    } else {
      const eml = await readFile(join(dir, `outbox-${id}.eml`), 'utf8')
      expect([eml.includes('Thanks for writing.'), eml.includes('text/html')]).toEqual([
        true,
        false,
      ])
    }
  })

  test('a template whose rendered header passes 256 KB fails the row with template_error, unsent', async () => {
    // Rendered at send from the row its trigger stored: a column filled into a display name may be
    // any length, and Exchange Online takes no header past 256 KB (as enqueue counts it, 0086).
    const id = await insertTemplated(
      { to: ['{{name}} <rcpt@example.com>'] },
      { name: 'n'.repeat(262_144) },
    )
    expect(await drained(id, transport)).toEqual({
      status: 'failed',
      code: 'template_error',
      error: expect.stringContaining(
        'message has a header of at least 262185 bytes (its subject, from, to, cc, replyTo and X- headers as lines): Exchange Online takes a message header of at most 262144 bytes (256 KB)',
      ),
      written: 0,
      requested: 0,
    })
    await engine?.stop()
    engine = null
    // At 256 KB, as a stored message is, it is sent.
    const name = 'n'.repeat(262_144 - 'Subject: Hello\r\nTo:  <rcpt@example.com>\r\n'.length)
    const sent = await insertTemplated({ to: ['{{name}} <rcpt@example.com>'] }, { name })
    expect(await drained(sent, transport)).toMatchObject({ status: 'sent' })
  })

  test('a line break in a stored subject or display name is sent as a space', async () => {
    const named = (address: string) => ({ address, name: `Ada${EVIL}\n` })
    const id = await insertStored({
      ...stored,
      from: named('from@example.com'),
      to: [named('to@example.com')],
      replyTo: [named('reply@example.com')],
      subject: `\r\nInquiry${EVIL}`,
    })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
    if (graph) {
      const m = graph.accepted[0]!.body.message as Record<string, unknown>
      expect(m).toMatchObject({
        subject: 'Inquiry X-Evil: 1',
        toRecipients: [{ emailAddress: { address: 'to@example.com', name: 'Ada X-Evil: 1' } }],
        replyTo: [{ emailAddress: { address: 'reply@example.com', name: 'Ada X-Evil: 1' } }],
      })
    } else {
      const eml = await readFile(join(dir, `outbox-${id}.eml`), 'utf8')
      expect(eml).toMatch(/^Subject: Inquiry X-Evil: 1\r$/m)
      for (const header of ['From', 'To', 'Reply-To'])
        expect(eml).toMatch(new RegExp(`^${header}: "Ada X-Evil: 1" <`, 'm'))
    }
  })

  test('a control character in a correlation id stored before 0024 is sent as a space', async () => {
    // Refused at enqueue since 0024; failing the row would fail the previous release's mail.
    const id = await insertStored(stored)
    await t.pool.query('update mailer.email_outbox set correlation_id = $2 where id = $1', [
      id,
      '\tcorr\u0001\u001b[0m\tx\u007f',
    ])
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
    if (graph) {
      const m = graph.accepted[0]!.body.message as Record<string, unknown>
      expect(m.internetMessageHeaders).toContainEqual({
        name: 'X-Correlation-Id',
        value: 'corr [0m x',
      })
    } else {
      const eml = await readFile(join(dir, `outbox-${id}.eml`), 'utf8')
      expect(eml).toMatch(/^X-Correlation-Id: corr \[0m x\r$/m)
    }
  })

  test('any other control character in a stored subject or display name is sent as a space too', async () => {
    const named = (address: string) => ({ address, name: 'Ada\u001b[31m\u007f Lovelace\u000b' })
    const id = await insertStored({
      ...stored,
      to: [named('to@example.com')],
      subject: '\tInquiry\u0001\u001b[0m\tabout\u000c\u007forders',
    })
    expect(await drained(id, transport)).toMatchObject({ status: 'sent' })
    if (graph) {
      const m = graph.accepted[0]!.body.message as Record<string, unknown>
      expect(m).toMatchObject({
        subject: 'Inquiry [0m about orders',
        toRecipients: [{ emailAddress: { address: 'to@example.com', name: 'Ada [31m  Lovelace' } }],
      })
    } else {
      const eml = await readFile(join(dir, `outbox-${id}.eml`), 'utf8')
      expect(eml).toMatch(/^Subject: Inquiry \[0m about orders\r$/m)
      expect(eml).toMatch(/^To: "Ada \[31m {2}Lovelace" <to@example.com>\r$/m)
    }
  })
})

test('an address refused at send is worded as enqueue words it: a list in one string, a domain not in A-labels', async () => {
  // Rows inserted by hand: each failed at send with the words mailer.enqueue_email refuses the same
  // message with (sql/0086, 0163), so a writer told either is told the same. Addresses not echoed.
  const refused: Record<string, unknown>[] = [
    { to: ['ann@example.com, Bob <bob@example.com>'] },
    { cc: ['x@example.com', 'a@b.c;c@d.e; e@f.g;'] },
    { replyTo: 'reply@example.com; Help <help@example.com>' },
    // Not a list (a quoted name's comma splits a piece that is no address, as enqueue splits it),
    // but a display name holding an address (sql/0168), as without a separator.
    { replyTo: 'reply@example.com, "Doe, J" <j@example.com>' },
    { to: 'Ann <ann@example.com> Bob <bob@example.com>' },
    { cc: ['Ann <ann@example.com>, Bob <bob@example.com>'] },
    // A lone value is named by its field (0168), a lone object's address too.
    { bcc: { address: 'nope' } },
    { from: 'ann@example.com, bob@example.com' },
    { from: { address: 'ann@example.com; bob@example.com' } },
    { to: ['ann@bücher.example'] },
    { cc: [{ address: ' ann@mañana.example ' }] },
    { bcc: ['Ann <ann@例え.jp>'] },
    { from: 'ann@bücher.example' },
    { from: { address: 'ann@bücher.example' } },
    // No list (a piece no address, an empty one), no letters but blanks: refused in the plain words.
    { to: ['Doe, John <john@example.com>'] },
    { to: ['ann@example.com,, bob@example.com'] },
    { to: ['ann@bü\u00a0cher.example'] },
  ]
  const enqueueSays: string[] = []
  for (const m of refused) {
    const e = await enqueued({ ...stored, ...m }).catch((err: Error) => err)
    enqueueSays.push((e as Error).message.replace(/^mailer: /, ''))
  }
  const ids = await Promise.all(refused.map((m) => insertStored({ ...stored, ...m })))
  engine = createTestEngine(t, { deps: { sender: await fileTransport() } })
  await engine.start()
  for (const id of ids) await engine.events.waitFor(settledFor(id))
  const rows = await Promise.all(ids.map((id) => rowOf(t, id)))
  expect(rows.map((r) => [r.status, r.last_error_code, r.last_error])).toEqual(
    enqueueSays.map((said) => ['failed', 'invalid_message', said]),
  )
  expect(await readdir(dir)).toEqual([])
})

test("an address refused at send is worded by the database's own definition, not a copy of it", async () => {
  // The worker asks mailer.normalize_recipients for the words (sql/0086's address_refusal, 0163's
  // list in one string) once it has refused an address: a database whose definition words it
  // otherwise is followed.
  await t.pool.query(`
    alter function mailer.address_refusal(text) rename to address_refusal_kept;
    create function mailer.address_refusal(a text) returns text language sql immutable as
      $$ select 'is not a valid e-mail address: as this database words it' $$`)
  try {
    const id = await insertStored({ ...stored, cc: [{ address: 'ann@bücher.example' }] })
    expect(await drained(id, fileTransport)).toEqual({
      status: 'failed',
      code: 'invalid_message',
      error: 'message.cc[0].address is not a valid e-mail address: as this database words it',
      written: 0,
      requested: 0,
    })
  } finally {
    await t.pool.query(`
      drop function mailer.address_refusal(text);
      alter function mailer.address_refusal_kept(text) rename to address_refusal`)
  }
})

test('a database that cannot word a refused address: the row fails in the plain words, a warning names the row, never the address', async () => {
  // Refused by the worker's rule all the same; only the words are the database's.
  await t.pool.query(
    'alter function mailer.normalize_recipients(jsonb, text) rename to normalize_recipients_kept',
  )
  const lines: string[] = []
  try {
    const id = await insertStored({ ...stored, to: ['ann@example.com, bob@example.com'] })
    engine = createTestEngine(t, {
      deps: { sender: await fileTransport(), log: createLogger('warn', (l) => lines.push(l)) },
    })
    await engine.start()
    await engine.events.waitFor(settledFor(id))
    const row = await rowOf(t, id)
    expect([row.status, row.last_error_code, row.last_error]).toEqual([
      'failed',
      'invalid_message',
      'message.to[0] is not a valid e-mail address',
    ])
    const warned = lines.filter((l) => l.includes('word a refused address'))
    expect(warned.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ level: 'warn', db: 'test', outboxId: id }),
    ])
    expect(warned.join('\n')).not.toContain('example.com')
  } finally {
    await t.pool.query(
      'alter function mailer.normalize_recipients_kept(jsonb, text) rename to normalize_recipients',
    )
  }
})

const RENDERED = 'is not a valid e-mail address after rendering'

/** Each template's row, filled with `emails`, fails template_error with `error`, unsent. */
async function failsRendered(
  cases: readonly (readonly [Parameters<typeof insertTemplated>[0], string, string])[],
): Promise<void> {
  for (const [template, emails, error] of cases) {
    const id = await insertTemplated(template, { emails })
    expect([emails, await drained(id, fileTransport)]).toEqual([
      emails,
      { status: 'failed', code: 'template_error', error, written: 0, requested: 0 },
    ])
    await engine?.stop()
    engine = null
  }
}

test('a template address rendered as a list in one string is told so, as a direct one is; another refusal keeps its words', async () => {
  // A column filled into an entry (a form's "emails" field) may hold several addresses: enqueue
  // tells a direct one that it holds a list; the rendered one said only that it is no address.
  await failsRendered([
    [
      { to: ['{{emails}}'] },
      'ann@example.com, bob@example.com',
      `to_addresses[0] ${RENDERED}: it holds 2 addresses separated by , or ;: each entry of to_addresses renders one address: give each its own entry, filled from a column that holds one`,
    ],
    [
      { cc: ['desk@example.com', '{{emails}}'] },
      ' Bob <bob@example.com>; ann@example.com; eve@example.com;',
      `cc_addresses[1] ${RENDERED}: it holds 3 addresses separated by , or ;: each entry of cc_addresses renders one address: give each its own entry, filled from a column that holds one`,
    ],
    // No list (a piece that is no address), a domain of other letters: the plain words (enqueue's
    // advice on A-labels is for its callers; a template's row is rendered, not enqueued so).
    [
      { from: '{{emails}}' },
      'Ann <ann@example.com>, bob@example.com',
      `from_address ${RENDERED}: it holds 2 addresses separated by , or ;: from_address renders one address, the sender`,
    ],
    [{ to: ['{{emails}}'] }, 'ann@example.com, not an address', `to_addresses[0] ${RENDERED}`],
    [{ to: ['{{emails}}'] }, 'ann@bücher.example', `to_addresses[0] ${RENDERED}`],
  ])
})

/** What mailer.normalize_recipients says of each value in its field: its refusal, or null. One statement. */
async function enqueueRefusals(
  cases: { field: string; value: unknown }[],
): Promise<(string | null)[]> {
  const c = await t.pool.connect()
  try {
    await c.query(`create or replace function pg_temp.refusal(v jsonb, field text) returns text language plpgsql as $$
      begin
        perform mailer.normalize_recipients(v, field);
        return null;
      exception when invalid_parameter_value then
        return sqlerrm;
      end $$`)
    const r = await c.query<{ said: string | null }>(
      'select pg_temp.refusal(v, f) as said from unnest($1::jsonb[], $2::text[]) with ordinality x(v, f, n) order by n',
      [cases.map((k) => JSON.stringify(k.value)), cases.map((k) => k.field)],
    )
    return r.rows.map((row) => row.said?.replace(/^mailer: /, '') ?? null)
  } finally {
    c.release()
  }
}

/** What the worker (its render, then deliver.ts's wording) says of each value in its field, beside a valid rest. */
async function sendRefusals(
  cases: { field: string; value: unknown }[],
): Promise<(string | null)[]> {
  return await Promise.all(
    cases.map(async ({ field, value }) => {
      const key = field.slice('message.'.length)
      const message = { ...stored, from: 'from@example.com', [key]: value }
      try {
        renderLease(claimedLease({ message }), new Map(), null)
        return null
      } catch (e) {
        // A refused address is worded as deliver.ts words it: by asking the database.
        if (e instanceof AddressRefused)
          return e.worded(await addressRefusal(t.db, e.entry, e.field))
        return (e as Error).message
      }
    }),
  )
}

test('every class of address string is refused at send in the words enqueue refuses it with, or taken by both', async () => {
  // The worker judges addresses by its own rule (stored-recipients.ts) and asks the database for a
  // refusal's words (address-refusal.ts): compared here class by class, not by a few examples. Each value is
  // given as a list's entry, as the sender, and as {"address"} in either, and what enqueue's
  // function says of it (a refusal's field and words, or none) is what the send's check says.
  const locals = ['ann', '"a b"', '"a,b"', 'a\u00a0b', 'ä', 'a\u0001b']
  const domains = [
    'example.com',
    'bücher.example',
    '例え.jp',
    'bü\u00a0cher.example',
    'x',
    'b.c\u200a',
  ]
  const addresses = [
    ...locals.flatMap((l) => domains.map((d) => `${l}@${d}`)),
    ...['no', '', 'a@', '@b.c', 'a@b@c.de', '<a@b.cd>', 'a@b.cd>'],
  ]
  const names = ['Ann ', '"Doe, J" ', 'Doe, John ', '"" ', '\t', 'x@y ']
  const pieces = ['ann@example.com', 'Bob <bob@example.com>', '"Doe, J" <j@example.com>']
  const others = [...pieces, 'b@bücher.example', '"a b"@example.com', 'no', '']
  const separators = [',', '; ', ' ,\t', ',,', ';\v', ',\n']
  const strings = [
    ...addresses.flatMap((a) => [a, ` ${a} `, `\t${a}`]),
    ...names.flatMap((n) => addresses.slice(0, 12).map((a) => `${n}<${a}>`)),
    ...pieces.flatMap((a) => others.flatMap((b) => separators.map((s) => `${a}${s}${b}`))),
    ...pieces.flatMap((a) => [`${a},`, `; ${a}`, `${a}, ${a}; ${a},`]),
  ]
  const cases = strings.flatMap((s) => [
    { field: 'message.to', value: [s] },
    { field: 'message.from', value: s },
    { field: 'message.cc', value: [{ address: s }] },
    { field: 'message.from', value: { address: s } },
  ])
  const enqueueSays = await enqueueRefusals(cases)
  const sendSays = await sendRefusals(cases)
  const differ = cases.flatMap((k, i) =>
    sendSays[i] === enqueueSays[i] ? [] : [{ ...k, enqueue: enqueueSays[i], send: sendSays[i] }],
  )
  expect(differ).toEqual([])
  // Every class was met: a refusal of each kind, and addresses both take.
  const said = new Set(
    enqueueSays.map((s) => s?.replace(/^\S+ /, '').replace(/: .*/s, '') ?? 'taken'),
  )
  expect([...said].sort()).toEqual(['is not a valid e-mail address', 'taken'])
  for (const words of [
    'not written in A-labels',
    'it holds 2 addresses',
    'it holds 3 addresses',
    'from is one address',
  ])
    expect([words, enqueueSays.some((s) => s?.includes(words))]).toEqual([words, true])
})

test('an entry of another shape is refused at send in the words enqueue refuses it with', async () => {
  // A row written by hand may hold what enqueue never stores: an address or a name that is no
  // string, an entry that is no string or object, one such before a bad address. Enqueue names
  // each at its key (.address, .name) or the entry, in the list's order; so does the send. (An
  // object with keys besides address and name, which enqueue refuses, is sent: left as it was.)
  const entries: unknown[] = [
    { address: 5 },
    { address: null },
    { name: 'Ann' },
    {},
    { address: ['ann@example.com'] },
    { address: { a: 'ann@bücher.example' } },
    { address: 'ann@example.com', name: 5 },
    { address: 'ann@example.com', name: ['Ann'] },
    { address: 'no', name: 5 },
    { address: 'ann@bücher.example', name: true },
    5,
    true,
    ['ann@example.com'],
  ]
  const cases = [
    ...entries.flatMap((e) => [
      { field: 'message.to', value: [e] },
      { field: 'message.bcc', value: ['ann@example.com', e] },
      { field: 'message.replyTo', value: [e, 'not an address'] },
    ]),
    ...entries.filter((e) => !Array.isArray(e)).map((e) => ({ field: 'message.from', value: e })),
  ]
  const enqueueSays = await enqueueRefusals(cases)
  const sendSays = await sendRefusals(cases)
  expect(enqueueSays.filter((s) => s === null)).toEqual([])
  const differ = cases.flatMap((k, i) =>
    sendSays[i] === enqueueSays[i] ? [] : [{ ...k, enqueue: enqueueSays[i], send: sendSays[i] }],
  )
  expect(differ).toEqual([])
})

test('a template address whose display name holds another address is refused as a list, not sent to the last one; a quoted name is taken', async () => {
  // "Ann <ann@…>, Bob <bob@…>" rendered was read as bob@… named "Ann <ann@…>, Bob": the mail went
  // to Bob alone and Ann's was lost, where enqueue refuses the same string as a list in one string.
  await failsRendered([
    [
      { to: ['{{emails}}'] },
      'Ann <ann@example.com>, Bob <bob@example.com>',
      `to_addresses[0] ${RENDERED}: it holds 2 addresses separated by , or ;: each entry of to_addresses renders one address: give each its own entry, filled from a column that holds one`,
    ],
    [
      { to: ['desk@example.com'], from: '{{emails}}' },
      'ann@example.com; Bob <bob@example.com>',
      `from_address ${RENDERED}: it holds 2 addresses separated by , or ;: from_address renders one address, the sender`,
    ],
    // No separator: the name holds the other address (sql/0168's words, its quoting hint too).
    [
      { to: ['{{emails}}'] },
      'Ann <ann@example.com> Bob <bob@example.com>',
      `to_addresses[0] ${RENDERED}: it holds 2 addresses, 1 in its display name: each entry of to_addresses renders one address: give each its own entry, filled from a column that holds one; a display name meant to show an address goes in double quotes`,
    ],
  ])
  // In RFC 5322's double quotes a name may hold anything but a quote: the writer's own, sent so.
  const id = await insertTemplated(
    { to: ['{{emails}}'] },
    { emails: '"Ann <ann@example.com>, Bob" <bob@example.com>' },
  )
  expect(await drained(id, fileTransport)).toMatchObject({ status: 'sent', written: 1 })
  const eml = await readFile(join(dir, `outbox-${id}.eml`), 'utf8')
  expect(eml).toMatch(/^To: "Ann <ann@example.com>, Bob" <bob@example.com>\r$/m)
})
