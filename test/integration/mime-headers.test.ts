// Every string that reaches a MIME header, enqueued through SQL and written by the file transport: refused, folded or encoded, none adds a header.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isEmailAddress } from '../../src/config/email-address.ts'
import { foldControlCharacters, hasControlCharacter } from '../../src/outbox/header-text.ts'
import { MIME_TYPE } from '../../src/outbox/mime-type.ts'
import { composeEml, createFileSender } from '../../src/transport/file-sender.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let dir: string
let engine: TestEngine | null = null

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outbox-mime-'))
})
afterEach(async () => {
  await engine?.stop()
  engine = null
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const EVIL = '\r\nX-Evil: 1'
const ok = { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' }

/** Sends the row through a drainer with the file transport and returns its .eml. */
async function written(id: string): Promise<string> {
  engine = createTestEngine(t, { deps: { sender: createFileSender(dir) } })
  await engine.start()
  await engine.events.waitFor(settledFor(id, 'sent'))
  return readFile(join(dir, `outbox-${id}.eml`), 'utf8')
}

/** The header lines of every part: each either `Name: value` or a folded continuation. */
function headerLines(eml: string): string[] {
  return eml
    .split(/\r\n\r\n|\r\n--/)
    .filter((block) => /^[A-Za-z-]+: /.test(block))
    .flatMap((block) => block.split('\r\n'))
}

function expectNoInjectedHeader(eml: string) {
  const names = headerLines(eml)
    .filter((l) => !/^[ \t]/.test(l))
    .map((l) => l.slice(0, l.indexOf(':')).toLowerCase())
  expect(names).not.toContain('x-evil')
  // A line break that reached a header would end it: every unfolded line is a header of its own.
  for (const line of headerLines(eml)) expect(line).toMatch(/^([A-Za-z0-9-]+:( |$)|[ \t])/)
}

const refusal = (message: Record<string, unknown>) =>
  enqueue(t, message).then(
    () => null,
    (e: Error & { code?: string }) => ({ code: e.code, message: e.message }),
  )

describe('refused at enqueue, naming the field', () => {
  test('a line break in a header value', async () => {
    expect(await refusal({ ...ok, headers: { 'X-Tag': `v${EVIL}` } })).toEqual({
      code: '22023',
      message: expect.stringContaining('message.headers.X-Tag'),
    })
  })

  test('a control character other than a tab in a header value', async () => {
    for (const value of ['v\u001b[31m', 'v\u007f', 'v\u000b', 'v\u0001']) {
      expect([value, await refusal({ ...ok, headers: { 'X-Tag': value } })]).toEqual([
        value,
        {
          code: '22023',
          message:
            'mailer: message.headers.X-Tag must be a one-line string without control characters (a tab is allowed)',
        },
      ])
    }
    expect(await refusal({ ...ok, headers: { 'X-Tag': 'a\tb' } })).toBeNull()
  })

  test('a control character in options.correlationId, an id users search by', async () => {
    for (const value of [`corr${EVIL}`, 'corr\n', 'corr\t1', 'corr\u001b', 'corr\u007f']) {
      const refused = await enqueue(t, ok, { correlationId: value }).then(
        () => null,
        (e: Error & { code?: string }) => ({ code: e.code, message: e.message }),
      )
      expect([value, refused]).toEqual([
        value,
        {
          code: '22023',
          message:
            'mailer: options.correlationId must not contain a control character (such as a line break or a tab)',
        },
      ])
    }
    expect(await t.pool.query('select 1 from mailer.email_outbox')).toMatchObject({ rowCount: 0 })
  })

  test('a control character in an attachment file name or content id', async () => {
    const attachment = { filename: 'a.png', contentBase64: 'QQ==', contentType: 'image/png' }
    for (const [field, value] of [
      ['filename', `a${EVIL}.txt`],
      ['filename', 'a\n.txt'],
      ['filename', 'a\t.txt'],
      ['filename', 'a\u007f.txt'],
      ['contentId', `logo${EVIL}`],
      ['contentId', 'logo\u0001'],
    ] as const) {
      const attachments = [attachment, { ...attachment, [field]: value }]
      expect([value, await refusal({ ...ok, attachments })]).toEqual([
        value,
        {
          code: '22023',
          message: `mailer: message.attachments[1].${field} must not contain a control character (such as a line break or a tab)`,
        },
      ])
    }
    expect(await t.pool.query('select 1 from mailer.email_outbox')).toMatchObject({ rowCount: 0 })
  })

  test('a subject that is nothing but line breaks and blanks', async () => {
    expect(await refusal({ ...ok, subject: ' \r\n\n ' })).toEqual({
      code: '22023',
      message: 'mailer: message.subject is required and must be a non-empty string',
    })
  })

  test('an attachment contentType that is no MIME type (a line break, no subtype, a space)', async () => {
    for (const contentType of [
      `text/plain${EVIL}`,
      'text/plain\nX-Evil: 1',
      'text/plain; charset=utf-8\r\n',
      'text',
      'text/',
      '/plain',
      'text/pl ain',
      'text/plain; charset',
      'text/plain; charset="utf-8',
      'text/plain; name="a\u0007"',
      'text/plain\t; charset=utf-8',
    ]) {
      const attachments = [{ filename: 'a.txt', contentBase64: 'QQ==', contentType }]
      expect([contentType, await refusal({ ...ok, attachments })]).toEqual([
        contentType,
        {
          code: '22023',
          message: expect.stringMatching(
            /message\.attachments\[0\]\.contentType must be a MIME type/,
          ),
        },
      ])
    }
    expect(await t.pool.query('select 1 from mailer.email_outbox')).toMatchObject({ rowCount: 0 })
  })

  test('a NUL anywhere: Postgres cannot hold it in jsonb', async () => {
    expect(await refusal({ ...ok, to: { address: 'a@example.com', name: 'A\u0000B' } })).toEqual({
      code: '22P05',
      message: 'unsupported Unicode escape sequence',
    })
  })
})

test('POST /v1/outbox’s MIME type pattern accepts exactly what mailer.is_mime_type accepts', async () => {
  const samples = [
    'text/plain',
    'TEXT/HTML',
    'application/vnd.ms-excel',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    'image/svg+xml',
    "message/x!#$%&'*+.^_`{|}~-",
    'text/plain; charset=utf-8',
    'text/plain;charset=utf-8',
    'text/plain ; charset=utf-8 ',
    'text/plain; a=1; b="two words"; c="q\\"x"',
    "text/plain; name*=utf-8''f%C3%BC.txt",
    'text/plain; name=""',
    'text/plain; name="ü"',
    'text/plain; name="a\tb"',
    'text/plain; name="a',
    'text/plain; name=a b',
    'text/plain;',
    'text/plain; =x',
    'text/plain; a=',
    ' text/plain',
    'text/plain\n',
    'text/plain\u000b',
    'text/plain\u007f',
    'text/pläin',
    'text/(plain)',
    'text/plain/x',
    'text//plain',
    'text/',
    '',
  ]
  const { rows } = await t.pool.query<{ s: string; ok: boolean }>(
    'select s, mailer.is_mime_type(s) as ok from unnest($1::text[]) as s',
    [samples],
  )
  expect(rows.map((r) => [r.s, MIME_TYPE.test(r.s)])).toEqual(rows.map((r) => [r.s, r.ok]))
  expect(rows.filter((r) => r.ok)).toHaveLength(12)
})

test('the send-time checks fold and refuse exactly as mailer.enqueue_email does', async () => {
  const samples = [
    'plain',
    '',
    '\r\n',
    '\n\n\n',
    'a\r\nb',
    'a\n\rb',
    '\r\na \r\n\r\n b\n',
    ' a \n',
    'tab\there',
    '\t\u000b a \u001b[31m\u007f\r\n',
    '\u001b',
    'a\u0001\u0002b',
    'a\u0001b',
    'a\u001fb',
    'a\u007fb',
    'a\u0080b',
    'a\u2028b',
    'ü\r',
  ]
  const { rows } = await t.pool.query<{ s: string; folded: string; control: boolean }>(
    `select s, mailer.fold_control_characters(s) as folded, s ~ '[\\x01-\\x1f\\x7f]' as control
       from unnest($1::text[]) as s`,
    [samples],
  )
  expect(rows.map((r) => [r.s, foldControlCharacters(r.s), hasControlCharacter(r.s)])).toEqual(
    rows.map((r) => [r.s, r.folded, r.control]),
  )
})

test('an address is judged alike at enqueue and at send, none the file transport would write as another', async () => {
  const samples = [
    'plain@example.com',
    "o'brien+tag@example.com",
    'zoë@example.com',
    'a.@example.com',
    ...['\u0001', '\u001f', '\u007f', '\u0080', '\u0085', '\u009f', '\u00a0', '\u1680'].map(
      (c) => `a${c}b@example.com`,
    ),
    ...['\u2000', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff'].map(
      (c) => `a${c}b@example.com`,
    ),
    // Neither control nor blank: kept by nodemailer as it is.
    'a\u200bb@example.com',
    'a\u202eb@example.com',
    'a b@example.com',
    'a\tb@example.com',
  ]
  const { rows } = await t.pool.query<{ a: string; ok: boolean }>(
    'select a, mailer.is_email_address(a) as ok from unnest($1::text[]) as a',
    [samples],
  )
  expect(rows.map((r) => [r.a, isEmailAddress(r.a)])).toEqual(rows.map((r) => [r.a, r.ok]))
  expect(rows.filter((r) => r.ok).map((r) => r.a)).toEqual([
    'plain@example.com',
    "o'brien+tag@example.com",
    'zoë@example.com',
    'a.@example.com',
    'a\u200bb@example.com',
    'a\u202eb@example.com',
  ])
  // Each address taken is written as it is (or quoted, the same address), never as another.
  for (const address of rows.filter((r) => r.ok).map((r) => r.a)) {
    const eml = (
      await composeEml({
        outboxId: '1',
        tenant: 'default',
        attempt: 1,
        correlationId: null,
        from: { address: 'from@example.com' },
        to: [{ address }],
        cc: [],
        bcc: [],
        replyTo: [],
        subject: 'S',
        text: 'T',
        html: null,
        importance: null,
        headers: {},
        attachments: [],
      })
    ).toString('utf8')
    const local = address.slice(0, address.indexOf('@'))
    const to = /^To: (.*)\r$/m.exec(eml)?.[1]
    const same = [address, `"${local}"@example.com`, `<"${local}"@example.com>`]
    expect([address, to]).toEqual([address, same.includes(to ?? '') ? to : same[0]])
  }
})

describe('folded to one line at enqueue: stored and sent so', () => {
  test('any other control character in the subject or a display name becomes a space too', async () => {
    const id = await enqueue(t, {
      ...ok,
      subject: '\tInquiry\u0001\u001b[0m\tabout\u000c\u007forders\u000b',
      to: [{ address: 'to@example.com', name: 'Ada\u001b[31m\u007f Lovelace' }],
    })
    const { rows } = await t.pool.query('select message from mailer.email_outbox where id = $1', [
      id,
    ])
    expect(rows[0].message.subject).toBe('Inquiry [0m about orders')
    expect(rows[0].message.to[0].name).toBe('Ada [31m  Lovelace')
    const eml = await written(id)
    expect(eml).toMatch(/^Subject: Inquiry \[0m about orders$/m)
    expect(eml).toMatch(/^To: "Ada \[31m {2}Lovelace" <to@example.com>$/m)
  })

  test('a line break in the subject or a display name becomes a space, dropped at either end', async () => {
    const named = (address: string) => ({ address, name: `\r\nName${EVIL}\n` })
    const id = await enqueue(t, {
      ...ok,
      subject: `Inquiry:\r\nmy order${EVIL}\r\n`,
      from: named('from@example.com'),
      to: [named('to@example.com'), 'plain@example.com'],
      cc: [named('cc@example.com')],
      bcc: [named('bcc@example.com')],
      replyTo: [named('reply@example.com')],
    })
    const { rows } = await t.pool.query('select message from mailer.email_outbox where id = $1', [
      id,
    ])
    const m = rows[0].message
    expect(m.subject).toBe('Inquiry: my order X-Evil: 1')
    expect([m.from, ...m.to, ...m.cc, ...m.bcc, ...m.replyTo].map((a) => a.name)).toEqual([
      'Name X-Evil: 1',
      'Name X-Evil: 1',
      undefined,
      'Name X-Evil: 1',
      'Name X-Evil: 1',
      'Name X-Evil: 1',
    ])
    const eml = await written(id)
    expectNoInjectedHeader(eml)
    expect(eml).toMatch(/^Subject: Inquiry: my order X-Evil: 1$/m)
    for (const header of ['From', 'To', 'Cc', 'Bcc', 'Reply-To']) {
      expect(eml).toMatch(new RegExp(`^${header}: "Name X-Evil: 1" <`, 'm'))
    }
  })
})

describe('accepted, and encoded by the MIME composer so that no header is added', () => {
  test('a line break in a correlation id stored before 0024, which becomes X-Correlation-Id', async () => {
    // Refused at enqueue since 0024; a row stored before is folded into one line where it is written.
    const id = await enqueue(t, ok)
    await t.pool.query('update mailer.email_outbox set correlation_id = $2 where id = $1', [
      id,
      `corr${EVIL}`,
    ])
    const eml = await written(id)
    expectNoInjectedHeader(eml)
    expect(eml).toMatch(/^X-Correlation-Id: corr X-Evil: 1$/im)
  })

  test('a MIME type with parameters is written as given', async () => {
    const id = await enqueue(t, {
      ...ok,
      attachments: [
        { filename: 'a.txt', contentBase64: 'QQ==', contentType: 'text/plain; charset=utf-8' },
        {
          filename: 'b.xlsx',
          contentBase64: 'QQ==',
          contentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
        },
        { filename: 'c.txt', contentBase64: 'QQ==', contentType: 'Text/Plain ; format="flowed"' },
      ],
    })
    const eml = await written(id)
    expectNoInjectedHeader(eml)
    expect(eml).toContain('\r\nContent-Type: text/plain; charset=utf-8; name=a.txt\r\n')
    expect(eml).toContain(
      '\r\nContent-Type:\r\n application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;\r\n name=b.xlsx\r\n',
    )
    expect(eml).toContain('\r\nContent-Type: Text/Plain; format=flowed; name=c.txt\r\n')
  })

  test('a line break that a template fills into the subject or a display name', async () => {
    await t.pool.query(`
      create table if not exists public.inquiries (id bigint generated always as identity primary key, name text, email text);
      insert into mailer.templates (name, subject, text_body, to_addresses, reply_to)
      values ('inquiry', 'From {{name}}', 'x', array['{{name}} <sales@example.com>'], '{{name}} <{{email}}>');
      drop trigger if exists inquiries_mail on public.inquiries;
      create trigger inquiries_mail after insert on public.inquiries for each row execute function mailer.enqueue_from_row('inquiry');`)
    await t.pool.query('insert into public.inquiries (name, email) values ($1, $2)', [
      `Ada${EVIL}`,
      'ada@example.com',
    ])
    const { rows } = await t.pool.query<{ id: string }>('select id from mailer.email_outbox')
    const eml = await written(rows[0]!.id)
    expectNoInjectedHeader(eml)
    expect(eml).toMatch(/^Subject: From Ada X-Evil: 1$/m)
  })
})
