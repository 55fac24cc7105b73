// What Graph's sendMail can never take is refused by mailer.enqueue_email, as the transport would refuse it at send.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { renderLease } from '../../src/outbox/render.ts'
import {
  buildSendMailBody,
  checkSendable,
  MAX_REQUEST_BYTES,
} from '../../src/transport/graph-message.ts'
import { ROOT } from '../deploy/deploy-files.ts'
import { claimedLease } from '../support/claimed-lease.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

const count = async () =>
  Number((await t.pool.query('select count(*) as n from mailer.email_outbox')).rows[0].n)
const ok = { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' }
const base64Of = (bytes: number) => Buffer.alloc(bytes, 7).toString('base64')

/**
 * What the transport adds to a message, each at its largest: bigint's largest id (X-Outbox-Id and
 * OutboxId), a correlation id of 200 characters of 4 bytes each (email_outbox_correlation_id_check),
 * a database name of 40 characters (config/database-list.ts) and the database's id, a uuid.
 */
const LARGEST_TAGS = {
  id: '9223372036854775807',
  correlationId: '\u{1f4e7}'.repeat(200),
  database: 'd'.repeat(40),
  databaseId: '0b7e0a5c-9d1f-4c36-8f0e-5a2d6c4b3e1f',
}

/** The transport's verdict on a stored message, as the row whose tags are LARGEST_TAGS. */
function transportVerdict(message: Record<string, unknown>) {
  const lease = claimedLease({
    id: LARGEST_TAGS.id,
    correlationId: LARGEST_TAGS.correlationId,
    message,
  })
  const mail = renderLease(lease, new Map(), 'sender@example.com')
  const json = JSON.stringify(
    buildSendMailBody(mail, {
      saveToSentItems: true,
      database: LARGEST_TAGS.database,
      databaseId: LARGEST_TAGS.databaseId,
    }),
  )
  return { bytes: Buffer.byteLength(json), problem: checkSendable(mail, json) }
}

const refusal = (message: Record<string, unknown>) =>
  enqueue(t, message).then(
    () => null,
    (e: Error & { code?: string }) => ({ code: e.code, message: e.message }),
  )

describe('attachments Graph cannot take inline', () => {
  test('more than 3 MB of attachments in total is refused naming message.attachments, and nothing is stored', async () => {
    const half = { filename: 'a.bin', contentBase64: base64Of(1_600_000) }
    const message = { ...ok, attachments: [half, { ...half, filename: 'b.bin' }] }
    expect(transportVerdict(message).problem?.code).toBe('attachment_too_large')
    const e = await refusal(message)
    expect(e?.code).toBe('22023')
    expect(e?.message).toBe(
      'mailer: message.attachments must total at most 3145728 bytes (3 MB, decoded): Graph sendMail takes no more in one message; these total 3200000',
    )
    expect(await count()).toBe(0)
  })

  test('base64 whose length (whitespace aside) is not a multiple of four is refused naming its contentBase64', async () => {
    // 4n+1 characters decode to nothing whole; unpadded or wrongly padded base64 is refused by
    // Graph's decoder (.NET's Convert.FromBase64String wants whole groups of four).
    for (const content of ['QUJDR', 'QQ', 'QQ=', 'QUJ\r\nDR', 'QUJDRA', 'QU J\tD\vR\f']) {
      const e = await refusal({ ...ok, attachments: [{ filename: 'a', contentBase64: content }] })
      expect([content, e?.code, e?.message]).toEqual([
        content,
        '22023',
        `mailer: message.attachments[0].contentBase64 must be whole groups of four base64 characters (pad the last with =); this holds ${content.replace(/\s/g, '').length}`,
      ])
    }
    for (const content of [
      '',
      'QUJD',
      'QQ==',
      'QUI=',
      'QU\r\nJD\n',
      'QUI= \n',
      'Q U\tJ\vD\f\r\n',
    ]) {
      expect(
        await refusal({ ...ok, attachments: [{ filename: 'a', contentBase64: content }] }),
      ).toBeNull()
    }
  })

  test('base64 in lines is taken and refused as in one line: padding only at the end, in one piece', async () => {
    const lines = (eol: string) => `${(base64Of(3000).match(/.{1,76}/g) ?? []).join(eol)}${eol}`
    for (const content of [
      lines('\r\n'),
      lines('\n'),
      `${lines('\r\n')}QQ==\r\n`,
      'QUJD\nQUI=\n\n\r\n',
      'QUJD\r\n QQ==\t',
      'QUJD\r\nQQ==',
      '\r\n',
    ]) {
      expect([
        content,
        await refusal({ ...ok, attachments: [{ filename: 'a', contentBase64: content }] }),
      ]).toEqual([content, null])
    }
    const notBase64 = {
      code: '22023',
      message:
        'mailer: message.attachments[0] must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content',
    }
    for (const content of [
      'QUJDQQ=\r\n=',
      'QUJDQQ=\n=\n',
      'QQ==\r\nQUJD\r\n',
      'QUJD\r\nQQ=\r\nQQ==',
      `${lines('\r\n')}!\r\n`,
      `${lines('\n')}QUJD\n=QQ=\n`,
    ]) {
      const e = await refusal({ ...ok, attachments: [{ filename: 'a', contentBase64: content }] })
      expect([content, e]).toEqual([content, notBase64])
    }
    // Whole groups of four, counted without the line breaks.
    expect(
      await refusal({ ...ok, attachments: [{ filename: 'a', contentBase64: '=\r\n' }] }),
    ).toEqual({
      code: '22023',
      message:
        'mailer: message.attachments[0].contentBase64 must be whole groups of four base64 characters (pad the last with =); this holds 1',
    })
    expect(await count()).toBe(7)
  })

  test("takes and refuses what 0029's checks did, with the same answer (0032 only reads base64 in fewer passes)", async () => {
    // 0029's normalize_message beside today's, under another name, in this session alone.
    const sql = readFileSync(join(ROOT, 'sql/0029_graph_limits_at_enqueue.sql'), 'utf8')
    const created = sql.slice(sql.indexOf('create or replace function mailer.normalize_message('))
    const c = await t.pool.connect()
    await c.query(created.replace('mailer.normalize_message(', 'pg_temp.normalize_message_0029('))
    const answer = async (fn: string, content: string) =>
      c
        .query(`select ${fn}($1::jsonb) as m`, [
          JSON.stringify({ ...ok, attachments: [{ filename: 'a', contentBase64: content }] }),
        ])
        .then(
          (r) => JSON.stringify(r.rows[0].m),
          (e: Error) => e.message,
        )
    // Base64 groups, padding, line breaks, other blanks and a stray character, in any order; the
    // end, where the padding goes, drawn apart so that padding and line breaks meet there often.
    const piece = fc.constantFrom('QUJD', 'QQ', 'Q', '=', '==', '\r\n', '\n', '\r', ' ', '\t', '!')
    const end = fc.constantFrom('=', '==', '\r\n', '\n', ' ', 'Q')
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(piece, { maxLength: 8 }),
          fc.array(end, { maxLength: 5 }),
          async (body, tail) => {
            const content = [...body, ...tail].join('')
            const now = await answer('mailer.normalize_message', content)
            const before = await answer('pg_temp.normalize_message_0029', content)
            expect([content, now]).toEqual([content, before])
          },
        ),
        { numRuns: 600, seed: 30 },
      )
    } finally {
      c.release(true)
    }
  })

  test('the decoded size counts the padding, in one line and in lines: 3 MB taken, a byte more refused', async () => {
    const lines = (b64: string, eol: string) => `${(b64.match(/.{1,76}/g) ?? []).join(eol)}${eol}`
    const total = async (contentBase64: string) =>
      (await refusal({ ...ok, attachments: [{ filename: 'a', contentBase64 }] }))?.message
    const over = (bytes: number) =>
      `mailer: message.attachments must total at most 3145728 bytes (3 MB, decoded): Graph sendMail takes no more in one message; these total ${bytes}`
    // 3 MB decoded is taken as attachments, and is then past 4 MB as a request.
    expect(await total(lines(base64Of(3_145_728), '\r\n'))).toMatch(/^mailer: message is too large/)
    for (const [bytes, eol] of [
      [3_145_729, ''], // ends in ==
      [3_145_730, ''], // ends in =
      [3_145_729, '\r\n'],
      [3_145_730, '\n'],
    ] as const) {
      const b64 = base64Of(bytes)
      expect([bytes, eol, await total(eol ? lines(b64, eol) : b64)]).toEqual([
        bytes,
        eol,
        over(bytes),
      ])
    }
  })
})

describe('headers Exchange Online refuses', () => {
  // "Name: value" and a line break per header; Exchange Online caps a message's header at 256 KB.
  const lineBytes = (name: string, value: string) =>
    Buffer.byteLength(name) + 2 + Buffer.byteLength(value) + 2
  const headersOf = (total: number) => {
    const value = (name: string, bytes: number) => 'v'.repeat(bytes - lineBytes(name, ''))
    const half = Math.floor(total / 2)
    return {
      'X-A': value('X-A', half),
      'X-Bb': `é${value('X-Bb', total - half).slice(2)}`,
    }
  }

  test('our own headers over 256 KB together are refused naming message.headers; 256 KB with the subject and To lines is taken', async () => {
    // The whole header counts (0086): "Subject: Hello" and "To: rcpt@example.com", with CRLF.
    const rest = 'Subject: Hello'.length + 2 + 'To: rcpt@example.com'.length + 2
    const at = headersOf(262_144 - rest)
    expect(Object.entries(at).reduce((n, [name, value]) => n + lineBytes(name, value), 0)).toBe(
      262_144 - rest,
    )
    expect(await refusal({ ...ok, headers: at })).toBeNull()
    expect(await refusal({ ...ok, headers: headersOf(262_145) })).toEqual({
      code: '22023',
      message:
        'mailer: message.headers must total at most 262144 bytes as "Name: value" lines (256 KB: Exchange Online takes no larger message header); these total 262145',
    })
    expect(await count()).toBe(1)
  })
})

describe('a header Exchange Online refuses, or takes as another', () => {
  test('two headers whose names differ only in case are refused naming both; nothing stored', async () => {
    // Header names are case-insensitive: the transports sent the first in jsonb's key order and
    // dropped the other without a word.
    expect(await refusal({ ...ok, headers: { 'x-foo': 'b', 'X-Foo': 'a', 'X-Bar': 'c' } })).toEqual(
      {
        code: '22023',
        message:
          'mailer: message.headers.X-Foo is the same header as x-foo (header names are case-insensitive): give one of them',
      },
    )
    expect(await count()).toBe(0)
  })

  // The header lines the message's own fields make, each at its least: "Subject: s", "From: "
  // and each of to, cc and replyTo as one line of "name <address>" (or the address) joined by
  // ", ", and the X- headers as "Name: value", each with CRLF. Exchange writes more (Date,
  // Message-ID, MIME-Version, its own X- headers, an encoded name longer than the name).
  const line = (s: string) => Buffer.byteLength(s) + 2
  const to = (name: string) => `To: ${name} <a@example.com>`

  test('names, subject and X- headers past 256 KB together are refused naming message; up to it taken', async () => {
    const fixed = line('Subject: Hello') + line(to(''))
    const at = { ...ok, to: { address: 'a@example.com', name: 'n'.repeat(262_144 - fixed) } }
    expect(line(`Subject: ${at.subject}`) + line(to(at.to.name))).toBe(262_144)
    expect(await refusal(at)).toBeNull()
    const over = { ...at, to: { ...at.to, name: `${at.to.name}n` } }
    expect(await refusal(over)).toEqual({
      code: '22023',
      message:
        'mailer: message has a header of at least 262145 bytes (its subject, from, to, cc, replyTo and X- headers as lines): Exchange Online takes a message header of at most 262144 bytes (256 KB)',
    })
    // 300 recipients of 1,000-byte names: each far below anything, the whole past 256 KB.
    const many = Array.from({ length: 300 }, (_, i) => ({
      address: `r${i}@example.com`,
      name: 'é'.repeat(500),
    }))
    expect(
      (await refusal({ ...ok, to: many.slice(0, 150), cc: many.slice(150) }))?.message,
    ).toStartWith('mailer: message has a header of at least ')
    expect(await count()).toBe(1)
  })

  test("0135's header_refusal (the header fields only) answers as 0087's, beside large bodies and attachments", async () => {
    // 0087's header_refusal beside today's, under another name, in this session alone.
    const sql = readFileSync(
      join(ROOT, 'sql/0087_replay_answered_before_header_refusals.sql'),
      'utf8',
    )
    const from = sql.indexOf('create function mailer.header_refusal(')
    const created = sql.slice(from, sql.indexOf('$$;', from) + 3)
    const c = await t.pool.connect()
    await c.query(created.replace('mailer.header_refusal(', 'pg_temp.header_refusal_0087('))
    const answer = async (fn: string, message: unknown) =>
      (
        await c.query(`select ${fn}(mailer.normalize_message($1::jsonb, false)) as r`, [
          JSON.stringify(message),
        ])
      ).rows[0].r
    // Names near the 256 KB bound, headers alike but for case, and bodies or attachments that
    // alone take the jsonb past it (every such message calls header_refusal).
    const name = fc.constantFrom(0, 1_000, 130_000, 262_000, 262_200).map((n) => 'n'.repeat(n))
    const header = fc.constantFrom('X-Foo', 'x-foo', 'X-Bar', 'X-FOO')
    const bulk = fc.constantFrom(0, 300_000).map((n) => 'b'.repeat(n))
    try {
      await fc.assert(
        fc.asyncProperty(
          name,
          name,
          fc.uniqueArray(header, { maxLength: 3 }),
          fc.constantFrom('text', 'html', 'attachments'),
          bulk,
          async (toName, ccName, names, where, big) => {
            const message = {
              ...ok,
              to: { address: 'a@example.com', name: toName },
              cc: [{ address: 'c@example.com', name: ccName }],
              ...(names.length ? { headers: Object.fromEntries(names.map((h) => [h, 'v'])) } : {}),
              ...(where === 'attachments'
                ? {
                    attachments: [
                      { filename: 'a', contentBase64: Buffer.from(big).toString('base64') },
                    ],
                  }
                : { [where]: big || 'x' }),
            }
            const now = await answer('mailer.header_refusal', message)
            const before = await answer('pg_temp.header_refusal_0087', message)
            expect([toName.length, ccName.length, names, where, big.length, now]).toEqual([
              toName.length,
              ccName.length,
              names,
              where,
              big.length,
              before,
            ])
          },
        ),
        { numRuns: 40, seed: 46 },
      )
      // Both refusals met at least once among the draws above, and beside a large body.
      const over = { ...ok, to: { address: 'a@example.com', name: 'n'.repeat(262_200) } }
      expect(
        (await answer('mailer.header_refusal', { ...over, text: 'b'.repeat(1_000_000) }))?.[0],
      ).toBe('message')
      // A value that is not an object (no binary passes one) is refused by neither, as by 0087.
      const direct = async (fn: string, v: string) =>
        (await c.query(`select ${fn}($1::jsonb) as r`, [v])).rows[0].r
      for (const v of ['1', '"x"', 'null', '[1]', '{}']) {
        expect([v, await direct('mailer.header_refusal', v).catch((e) => String(e))]).toEqual([
          v,
          await direct('pg_temp.header_refusal_0087', v),
        ])
      }
    } finally {
      c.release(true)
    }
  })
})

describe('a request taken before 0086, repeated under its dedupeKey', () => {
  // Stored as enqueue_email stored it before 0086, which took both: the message normalized, the
  // headers alike but for case kept, the name of 256 KB kept.
  const caseAlike = { ...ok, headers: { 'X-Foo': 'a', 'x-foo': 'b' } }
  const longName = { ...ok, to: { address: 'a@example.com', name: 'n'.repeat(262_144) } }
  const storedBefore0086 = async (key: string, stored: Record<string, unknown>) =>
    (
      await t.pool.query<{ id: string }>(
        `insert into mailer.email_outbox (tenant, dedupe_key, message)
         values ('default', $1, mailer.normalize_message($2::jsonb) || $3::jsonb) returning id::text`,
        [key, JSON.stringify(ok), JSON.stringify(stored)],
      )
    ).rows[0]!.id

  test('is answered with its row, not refused; the same message under a new key still is', async () => {
    const a = await storedBefore0086('alike-but-case', { headers: caseAlike.headers })
    const b = await storedBefore0086('long-name', { to: [longName.to] })
    expect([
      await enqueue(t, caseAlike, { dedupeKey: 'alike-but-case' }),
      await enqueue(t, longName, { dedupeKey: 'long-name' }),
    ]).toEqual([a, b])
    expect(await refusal(caseAlike)).toEqual({
      code: '22023',
      message:
        'mailer: message.headers.X-Foo is the same header as x-foo (header names are case-insensitive): give one of them',
    })
    expect(
      await enqueue(t, longName, { dedupeKey: 'new-key' }).then(
        () => null,
        (e: Error & { code?: string }) => [e.code, e.message.slice(0, 45)],
      ),
    ).toEqual(['22023', 'mailer: message has a header of at least 2621'])
    expect(await count()).toBe(2)
  })
})

describe('a sendMail request past 4 MB', () => {
  // Each shape with a filler of n characters in its largest text; a 1-byte character, so the
  // request grows by one byte per character.
  const names = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({
      address: `${prefix}${i}@example.com`,
      name: `Name "${i}" é`,
    }))
  const shapes: Record<string, (n: number) => Record<string, unknown>> = {
    'html with characters JSON escapes': (n) => ({
      to: [{ address: 'a@example.com' }],
      subject: 'Grüße "quoted" \\ back',
      text: 'the text is not sent when there is html',
      html: `<p>line\nbreak\ttab "q" \\ é 😀 \u0007</p>${'a'.repeat(n)}`,
    }),
    // Six bytes in the request for each one byte of the message: past the bound under which
    // enqueue does not count the request (its jsonb at most a sixth of the limit).
    'html of control characters, each escaped as \\u00XX': (n) => ({
      to: 'a@example.com',
      subject: 's',
      html: `${'\u0001'.repeat(690_000)}${'a'.repeat(n)}`,
    }),
    // An empty html is no body (graph-message.ts): the text is sent, and counted.
    'text beside an empty html': (n) => ({
      to: 'a@example.com',
      subject: 's',
      text: `"quoted" é ${'x'.repeat(n)}`,
      html: '',
    }),
    // Nor is a blank one beside a text that shows something (shownBodies): the text is sent.
    'text beside a blank html': (n) => ({
      to: 'a@example.com',
      subject: 's',
      text: `"quoted" é ${'x'.repeat(n)}`,
      html: ' \u00a0\n\u200b',
    }),
    // A blank text beside an html is left out: the html is sent (and counted), as it always was.
    'html beside a blank text': (n) => ({
      to: 'a@example.com',
      subject: 's',
      text: '\u3000'.repeat(1000),
      html: `<p>"q"</p>${'h'.repeat(n)}`,
    }),
    'text, 500 named recipients, reply-to, headers and importance': (n) => ({
      to: names('t', 300),
      cc: names('c', 150),
      bcc: names('b', 50),
      replyTo: [...names('r', 3), { address: 'noname@example.com', name: '' }],
      subject: 's',
      text: 'x'.repeat(n),
      importance: 'high',
      headers: { 'X-Tag': 'a "tag" é', 'X-Other': 'sent once', 'X-Tab': 'a\tb' },
    }),
    'html beside attachments, base64 in MIME lines': (n) => ({
      to: [{ address: 'a@example.com', name: 'Ada' }],
      subject: 's',
      html: 'h'.repeat(n),
      attachments: [
        {
          filename: 'report "q".pdf',
          contentType: 'application/pdf',
          contentBase64: `${(base64Of(1_000_000).match(/.{1,76}/g) ?? []).join('\r\n')}\r\n`,
        },
        { filename: 'logo.png', contentBase64: base64Of(1_000_001), contentId: 'logo' },
        { filename: 'empty', contentBase64: '', contentType: null, contentId: null },
      ],
    }),
    // Sent as application/octet-stream (src/transport/attachment-type.ts), longer than these.
    'html beside attachments typed message/* and multipart/*': (n) => ({
      to: 'a@example.com',
      subject: 's',
      html: 'h'.repeat(n),
      attachments: [
        { filename: 'fwd.eml', contentType: 'message/rfc822', contentBase64: base64Of(1_000_000) },
        { filename: 'g.eml', contentType: 'MESSAGE/GLOBAL', contentBase64: base64Of(999) },
        { filename: 'parts', contentType: 'multipart/mixed', contentBase64: base64Of(1_000_001) },
      ],
    }),
  }
  for (const [name, shape] of Object.entries(shapes)) {
    test(`${name}: taken at exactly 4 MB, refused one byte past it, as the transport decides`, async () => {
      const at = 1000 + MAX_REQUEST_BYTES - transportVerdict(shape(1000)).bytes
      expect(transportVerdict(shape(at))).toEqual({ bytes: MAX_REQUEST_BYTES, problem: null })
      const over = transportVerdict(shape(at + 1))
      expect(over.problem?.code).toMatch(/^(message|attachment)_too_large$/)
      expect(await refusal(shape(at))).toBeNull()
      expect(await refusal(shape(at + 1))).toEqual({
        code: '22023',
        message: `mailer: message is too large for one Graph sendMail request: ${MAX_REQUEST_BYTES + 1} bytes with the largest ids the transport adds, Graph takes at most ${MAX_REQUEST_BYTES} (4 MB; attachments count as base64)`,
      })
      expect(await count()).toBe(1)
    })
  }
})
