// mailer.enqueue_email in the database: its validation, dedupe keys and the triggers' rows.
import { beforeEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { BLANK_CLASS, isBlank } from '../../src/outbox/blank-body.ts'
import { BLANK_BODIES, NOT_BLANK_BODIES } from '../support/blank-bodies.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { payloadsHeard } from '../support/notifications.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const count = async () =>
  Number((await t.pool.query('select count(*) as n from mailer.email_outbox')).rows[0].n)
const ok = { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' }

describe('mailer.enqueue_email validation', () => {
  const bad: [string, Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    ['no recipient', { subject: 's', text: 't' }, {}, /message\.to is required/],
    ['empty recipients', { to: [], subject: 's', text: 't' }, {}, /at least one recipient/],
    [
      'malformed address',
      { to: 'not-an-address', subject: 's', text: 't' },
      {},
      /message\.to is not a valid/,
    ],
    [
      'malformed cc object',
      { to: 'a@b.co', cc: [{ address: 'x@' }], subject: 's', text: 't' },
      {},
      /message\.cc\[0\]\.address/,
    ],
    ['no subject', { to: 'a@b.co', text: 't' }, {}, /message\.subject is required/],
    ['blank subject', { to: 'a@b.co', subject: '  ', text: 't' }, {}, /message\.subject/],
    // A line break folds to a space (0023): one of line breaks only is empty.
    ['line breaks only', { to: 'a@b.co', subject: '\r\n\n', text: 't' }, {}, /subject is required/],
    ['long subject', { to: 'a@b.co', subject: 's'.repeat(999), text: 't' }, {}, /at most 998/],
    ['no body', { to: 'a@b.co', subject: 's' }, {}, /text or message\.html is required/],
    // "" is no body (README; neither transport sends one): alone it would go out as an empty mail.
    ...(
      [
        ['empty text alone', { text: '' }, 'text'],
        ['empty html alone', { html: '' }, 'html'],
        ['empty text and html', { text: '', html: '' }, 'text'],
        ['empty html beside a null text', { text: null, html: '' }, 'html'],
      ] as const
    ).map(
      ([name, body, field]): [string, Record<string, unknown>, Record<string, unknown>, RegExp] => [
        name,
        { to: 'a@b.co', subject: 's', ...body },
        {},
        new RegExp(
          `^mailer: message\\.${field} must not be empty \\("" is no body\\): a message needs message\\.text or message\\.html$`,
        ),
      ],
    ),
    ['unknown message key', { ...ok, htlm: '<p>' }, {}, /message\.htlm is not a known key/],
    ['unknown option', ok, { bogus: 1 }, /options\.bogus is not a known option/],
    ['bad sendAt', ok, { sendAt: 'tomorrow' }, /options\.sendAt must be an ISO-8601/],
    [
      'expiresAt before sendAt',
      ok,
      { sendAt: '2031-01-01T00:00:00Z', expiresAt: '2030-01-01T00:00:00Z' },
      /expiresAt must be later/,
    ],
    [
      // Taken before 0044 when sendAt was given (only sendAt was compared): a row that could never
      // be sent, failed expired by the next sweep after a 201.
      'expiresAt already past, after a past sendAt',
      ok,
      { sendAt: '2020-01-01T00:00:00Z', expiresAt: '2020-01-01T00:05:00Z' },
      /options\.expiresAt must be later than now/,
    ],
    [
      'expiresAt already past, without sendAt',
      ok,
      { expiresAt: '2020-01-01T00:05:00Z' },
      /options\.expiresAt must be later than now/,
    ],
    [
      // Stored, the row then listed through the API as "+010000-01-01T11:59:59.000Z", no RFC 3339
      // date-time: the years 0001-9999 are counted in UTC, where the row's time is kept.
      'expiresAt past the year 9999 in UTC',
      ok,
      { expiresAt: '9999-12-31T23:59:59-12:00' },
      /options\.expiresAt must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z/,
    ],
    [
      'sendAt before the year 1 in UTC',
      ok,
      { sendAt: '0001-01-01T00:00:00+14:00' },
      /options\.sendAt must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z/,
    ],
    ['priority out of range', ok, { priority: 1000 }, /options\.priority/],
    ['fractional maxAttempts', ok, { maxAttempts: 1.5 }, /options\.maxAttempts/],
    ['bad header name', { ...ok, headers: { Subject: 'x' } }, {}, /message\.headers\.Subject/],
    ['reserved header', { ...ok, headers: { 'X-Outbox-Id': '1' } }, {}, /X-Outbox-Id/],
    [
      'attachment without base64',
      { ...ok, attachments: [{ filename: 'a.txt', contentBase64: '***' }] },
      {},
      /attachments\[0\]/,
    ],
    [
      // Accepted before, then refused by Graph (or a broken MIME part in a file) at send time.
      'attachment with a contentType that is no string',
      { ...ok, attachments: [{ filename: 'a.txt', contentBase64: 'QQ==', contentType: 5 }] },
      {},
      /attachments\[0\]/,
    ],
    [
      'attachment with a contentId that is no string',
      { ...ok, attachments: [{ filename: 'a.png', contentBase64: 'QQ==', contentId: {} }] },
      {},
      /attachments\[0\]/,
    ],
    ['bad tenant', ok, { tenant: 'a b' }, /options\.tenant/],
    [
      // Counted before any address is examined: normalising them one by one first took time
      // quadratic in their number (20,000: 25 s, past the API's 5 s limit) to say "too many".
      'too many recipients, counted before their addresses are checked',
      {
        ...ok,
        to: Array.from({ length: 400 }, (_, i) => `r${i}@example.com`),
        bcc: [...Array.from({ length: 100 }, (_, i) => `b${i}@example.com`), 'not-an-address'],
      },
      {},
      /message\.to has too many recipients/,
    ],
    [
      // Unbounded, and normalised in time quadratic in their number: 20,000 reply-to addresses
      // took 21 s of the caller's transaction (POST /v1/outbox: a 503 after its 5 s limit).
      'too many reply-to addresses, counted before they are checked',
      {
        ...ok,
        replyTo: [...Array.from({ length: 500 }, (_, i) => `r${i}@example.com`), 'not-an-address'],
      },
      {},
      /message\.replyTo has too many addresses \(at most 500\)/,
    ],
  ]
  for (const [name, message, options, error] of bad) {
    test(`${name}: raises a clear error and inserts nothing`, async () => {
      const e = await enqueue(t, message, options).catch((err: Error & { code?: string }) => err)
      expect(e).toBeInstanceOf(Error)
      expect((e as { code?: string }).code).toBe('22023')
      expect((e as Error).message).toMatch(error)
      expect(await count()).toBe(0)
    })
  }

  test('an empty text or html beside a body is taken, the body kept as given', async () => {
    // The body that is not empty is the mail (an empty html beside a text: 0074).
    for (const body of [
      { text: 'Hi', html: '' },
      { text: '', html: '<p>Hi</p>' },
    ]) {
      const id = await enqueue(t, { to: 'a@b.co', subject: 's', ...body })
      const { rows } = await t.pool.query(
        `select message->'text' as text, message->'html' as html from mailer.email_outbox where id = $1`,
        [id],
      )
      expect(rows).toEqual([body])
    }
  })

  test('an empty body beside an attachment is taken: the file is the mail (an invoice, a scan)', async () => {
    const pdf = {
      filename: 'invoice.pdf',
      contentBase64: 'JVBERi0=',
      contentType: 'application/pdf',
    }
    for (const body of [{ text: '' }, { html: '' }, { text: '', html: '' }]) {
      const message = { to: 'a@b.co', subject: 'Your invoice', ...body, attachments: [pdf] }
      const taken = await enqueue(t, message).then(
        async (id) =>
          (
            await t.pool.query(
              `select message->'text' as text, message->'html' as html, jsonb_array_length(message->'attachments') as files
                 from mailer.email_outbox where id = $1`,
              [id],
            )
          ).rows,
        (e: Error) => e.message,
      )
      expect([body, taken]).toEqual([body, [{ text: null, html: null, ...body, files: 1 }]])
    }
    // No attachment but an empty list: still no mail at all.
    const e = await enqueue(t, { to: 'a@b.co', subject: 's', text: '', attachments: [] }).catch(
      (err: Error) => err.message,
    )
    expect(e).toMatch(/^mailer: message\.text must not be empty/)
  })

  test('a body of blanks only is no body: refused as "" is, alone or keyed; taken beside a body or a file (0175)', async () => {
    const refusal = (body: Record<string, unknown>, options: Record<string, unknown> = {}) =>
      enqueue(t, { to: 'a@b.co', subject: 's', ...body }, options).then(
        () => null,
        (e: Error & { code?: string }) => `${e.code} ${e.message}`,
      )
    const words = (field: string) =>
      `22023 mailer: message.${field} must not be empty ("" is no body): a message needs message.text or message.html`
    for (const [what, blank] of BLANK_BODIES) {
      expect([
        what,
        await refusal({ text: blank }),
        await refusal({ html: blank }),
        await refusal({ text: blank, html: '' }),
        await refusal({ text: null, html: blank }),
        await refusal({ text: blank }, { dedupeKey: `fresh ${what}` }),
      ]).toEqual([what, words('text'), words('html'), words('text'), words('html'), words('text')])
    }
    expect(await count()).toBe(0)
    const pdf = { filename: 'invoice.pdf', contentBase64: 'JVBERi0=' }
    for (const [what, body] of NOT_BLANK_BODIES) {
      expect([what, await refusal({ text: body }), await refusal({ html: body })]).toEqual([
        what,
        null,
        null,
      ])
    }
    // The blank one beside a body: that body is the mail; beside a file, the file is.
    const blanks = BLANK_BODIES.map(([, blank]) => blank).join('')
    expect([
      await refusal({ text: blanks, html: '<p>Hi</p>' }),
      await refusal({ text: 'Hi', html: blanks }),
      await refusal({ text: blanks, attachments: [pdf] }),
      await refusal({ html: blanks, attachments: [pdf] }, { dedupeKey: 'with a file' }),
    ]).toEqual([null, null, null, null])
  })

  test('blank is spelt out in SQL as at send (blank-body.ts), the same characters whatever the locale', async () => {
    // enqueue_email holds the class as written; Postgres reads it as JavaScript does, every
    // character of the Basic Multilingual Plane (no other plane has a blank).
    const { rows } = await t.pool.query<{ src: string; cps: number[] }>(
      `select (select prosrc from pg_proc where oid = 'mailer.enqueue_email(jsonb, jsonb)'::regprocedure) as src,
              (select array_agg(cp order by cp) from generate_series(1, 65535) cp
                where (cp < 55296 or cp > 57343) and chr(cp) ~ $1) as cps`,
      [`^[${BLANK_CLASS}]*$`],
    )
    expect(rows[0]!.src).toContain(`'^[${BLANK_CLASS}]*$'`)
    // normalize_message counts the text's request when a blank html beside it is not sent (0177).
    const counted = await t.pool.query<{ src: string }>(
      `select prosrc as src from pg_proc where oid = 'mailer.normalize_message(jsonb, boolean)'::regprocedure`,
    )
    expect(counted.rows[0]!.src).toContain(`'^[${BLANK_CLASS}]*$'`)
    const js = Array.from({ length: 65535 }, (_, i) => i + 1).filter(
      (cp) => (cp < 0xd800 || cp > 0xdfff) && isBlank(String.fromCharCode(cp)),
    )
    expect(rows[0]!.cps).toEqual(js)
  })

  test('a 1 MB attachment is stored as given; a bad character at the end of the next one is refused naming it', async () => {
    // 0028 reads each attachment in place (it was parsed again for every check): same verdicts.
    const big = Buffer.alloc(768 * 1024, 7).toString('base64')
    const first = { filename: 'a.bin', contentBase64: big, contentType: 'application/pdf' }
    const id = await enqueue(t, { ...ok, attachments: [first] })
    const { rows } = await t.pool.query(
      `select message -> 'attachments' -> 0 = $2::jsonb as same from mailer.email_outbox where id = $1`,
      [id, JSON.stringify(first)],
    )
    expect(rows).toEqual([{ same: true }])
    const e = await enqueue(t, {
      ...ok,
      attachments: [first, { filename: 'b.bin', contentBase64: `${big}!` }],
    }).catch((err: Error) => err)
    expect((e as Error).message).toMatch(/message\.attachments\[1\] must be/)
  })

  test('500 reply-to addresses are accepted', async () => {
    const replyTo = Array.from({ length: 500 }, (_, i) => `r${i}@example.com`)
    const id = await enqueue(t, { ...ok, replyTo })
    const { rows } = await t.pool.query(
      `select jsonb_array_length(message -> 'replyTo') as n from mailer.email_outbox where id = $1`,
      [id],
    )
    expect(rows).toEqual([{ n: 500 }])
  })

  test('sendAt and expiresAt at the ends of the years 0001-9999 (UTC) are accepted', async () => {
    const id = await enqueue(t, ok, {
      sendAt: '0001-01-01T00:00:00Z',
      expiresAt: '9999-12-31T23:59:59.999999Z',
    })
    const { rows } = await t.pool.query(
      `select send_at = '0001-01-01T00:00:00Z' as first, expires_at = '9999-12-31T23:59:59.999999Z' as last
         from mailer.email_outbox where id = $1`,
      [id],
    )
    expect(rows).toEqual([{ first: true, last: true }])
  })

  test('a recipient or sender written "Name <address>", as a template and MAIL_FROM take it, is stored as {address, name}', async () => {
    const id = await enqueue(t, {
      to: ['Ann <ann@example.com>', '"Doe, John" <john@example.com>', ' <bare@example.com> '],
      replyTo: 'Help Desk <help@example.com>',
      from: 'Orders <orders@example.com>',
      subject: 'S',
      text: 'T',
    })
    const { rows } = await t.pool.query(
      `select message -> 'to' as to, message -> 'replyTo' as reply, message -> 'from' as from
         from mailer.email_outbox where id = $1`,
      [id],
    )
    expect(rows[0]).toEqual({
      to: [
        { address: 'ann@example.com', name: 'Ann' },
        { address: 'john@example.com', name: 'Doe, John' },
        { address: 'bare@example.com' },
      ],
      reply: [{ address: 'help@example.com', name: 'Help Desk' }],
      from: { address: 'orders@example.com', name: 'Orders' },
    })
    // A list in one string is refused saying to send a JSON list (in from, that from is one); one
    // only some of whose pieces are addresses is no list: refused as any string that is no address.
    const LIST = (n: number) =>
      `is not a valid e-mail address: it holds ${n} addresses separated by , or ;: give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]`
    for (const [message, refusal] of [
      [{ to: 'ann@example.com, Bob <bob@example.com>' }, `message.to ${LIST(2)}`],
      [
        { to: 'a@example.com', cc: ['x@example.com', 'a@b.c;c@d.e; e@f.g;'] },
        `message.cc[1] ${LIST(3)}`,
      ],
      [
        { to: 'a@example.com', from: 'ann@example.com, bob@example.com' },
        'message.from is not a valid e-mail address: it holds 2 addresses separated by , or ;: from is one address, the sender (to, cc and bcc take a JSON list)',
      ],
    ] as const) {
      const e = await enqueue(t, { ...message, subject: 'S', text: 'T' }).catch((err: Error) => err)
      expect([message, (e as Error).message]).toEqual([message, `mailer: ${refusal}`])
    }
    // A bad address inside <>, an unquoted name with a comma or an @ (a list cut at its last <…>),
    // a list with an empty piece or an address with a separator after it are refused as any string
    // that is no address.
    for (const to of [
      'ann@example.com, not-an-address',
      'ann@example.com,, bob@example.com',
      'ann@example.com;',
      'Doe, John <john@example.com>',
      'Ann <not-an-address>',
      'Ann <ann@example.com> trailing',
    ]) {
      const e = await enqueue(t, { to, subject: 'S', text: 'T' }).catch((err: Error) => err)
      expect([to, (e as Error).message]).toEqual([
        to,
        'mailer: message.to is not a valid e-mail address',
      ])
    }
    expect(await count()).toBe(1)
  })

  test('a display name holding an address says how many the string holds; one in double quotes is taken; a lone value is named by its field', async () => {
    // "Ann <ann@…>, Bob <bob@…>" is a list in one string (0163); without its separator, or with an
    // address typed into the name, it was "is not a valid e-mail address" alone (sql/0168).
    const NAMED = (n: number, inName: number, advice: string) =>
      `is not a valid e-mail address: it holds ${n} addresses, ${inName} in its display name: ${advice}; a display name meant to show an address goes in double quotes`
    const LIST =
      'give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]'
    const FROM = 'from is one address, the sender (to, cc and bcc take a JSON list)'
    for (const [message, refusal] of [
      [
        { to: 'Ann <ann@example.com>, Bob <bob@example.com>' },
        `message.to is not a valid e-mail address: it holds 2 addresses separated by , or ;: ${LIST}`,
      ],
      [
        { to: ['Ann <ann@example.com> Bob <bob@example.com>'] },
        `message.to[0] ${NAMED(2, 1, LIST)}`,
      ],
      [{ to: 'Ann ann@example.com <bob@example.com>' }, `message.to ${NAMED(2, 1, LIST)}`],
      [
        { to: 'a@example.com', cc: ['x@example.com', 'a@b.c d@e.f <bob@example.com>'] },
        `message.cc[1] ${NAMED(3, 2, LIST)}`,
      ],
      [
        { to: 'a@example.com', from: '"Ann" ann@example.com <bob@example.com>' },
        `message.from ${NAMED(2, 1, FROM)}`,
      ],
      // A name with an @ that is no address, or a bad bracketed address: the plain words.
      [{ to: 'Ann @ Home <bob@example.com>' }, 'message.to is not a valid e-mail address'],
      [{ to: 'ann@example.com <nope>' }, 'message.to is not a valid e-mail address'],
      // A lone value is the field itself, a lone object's address too; a list's entries keep their index.
      [{ to: 'nope' }, 'message.to is not a valid e-mail address'],
      [{ to: { address: 'nope' } }, 'message.to.address is not a valid e-mail address'],
      [
        { to: 'a@example.com', bcc: { address: 'x', nick: 'X' } },
        'message.bcc may only have the keys address and name',
      ],
      [
        { to: 'a@example.com', replyTo: 7 },
        'message.replyTo must be an address string or {"address","name"}',
      ],
      [{ to: ['a@example.com', 'nope'] }, 'message.to[1] is not a valid e-mail address'],
    ] as const) {
      const e = await enqueue(t, { ...message, subject: 'S', text: 'T' }).catch((err: Error) => err)
      expect([message, (e as Error).message]).toEqual([message, `mailer: ${refusal}`])
    }
    // RFC 5322's quoted name may hold anything but a quote: taken, as before.
    const id = await enqueue(t, {
      to: ['"Ann <ann@example.com>, Bob" <bob@example.com>', '"ann@example.com" <ann@example.com>'],
      subject: 'S',
      text: 'T',
    })
    const { rows } = await t.pool.query(
      "select message -> 'to' as to from mailer.email_outbox where id = $1",
      [id],
    )
    expect(rows[0].to).toEqual([
      { address: 'bob@example.com', name: 'Ann <ann@example.com>, Bob' },
      { address: 'ann@example.com', name: 'ann@example.com' },
    ])
  })

  test('an address holding a control character or a blank other than ASCII whitespace is refused, in every field and shape', async () => {
    // Taken before 0043 (Postgres's \s is ASCII whitespace in a C-locale database), then written by
    // the file transport as another address: "a\u0001b@…" as "ab@…", "ana\u00a0maria@…" as
    // "ana <maria@…>" (nodemailer drops control characters and splits at JavaScript's blanks).
    const refused = [
      ...['\u0001', '\u001b', '\u001f', '\u007f', '\u0080', '\u0085', '\u009f'],
      ...['\u00a0', '\u1680', '\u2000', '\u200a', '\u2028', '\u2029', '\u202f'],
      ...['\u205f', '\u3000', '\ufeff'],
    ]
    // The 102 refusals on one connection: a statement failing through pool.query costs its session
    // (node-postgres ends a client released with an error), and 102 new sessions took 16-21 s of
    // the test's 30 s on a loaded machine.
    const session = await t.pool.connect()
    try {
      for (const c of refused) {
        for (const [message, field] of [
          [{ to: `ana${c}maria@example.com` }, 'message.to'],
          [{ to: `${c}ana@example.com` }, 'message.to'],
          [
            { to: 'a@example.com', cc: [{ address: `ana${c}@example.com` }] },
            'message.cc[0].address',
          ],
          [{ to: 'a@example.com', bcc: [`Ana <ana${c}maria@example.com>`] }, 'message.bcc[0]'],
          [{ to: 'a@example.com', replyTo: `ana${c}maria@example.com` }, 'message.replyTo'],
          // from is one address: named by the field, not as a list's first entry.
          [{ to: 'a@example.com', from: `ana${c}maria@example.com` }, 'message.from'],
        ] as const) {
          const e = await session
            .query('select mailer.enqueue_email($1::jsonb, $2::jsonb) as id', [
              JSON.stringify({ ...message, subject: 'S', text: 'T' }),
              '{}',
            ])
            .catch((err: Error) => err)
          expect([c, field, (e as Error).message]).toEqual([
            c,
            field,
            `mailer: ${field} is not a valid e-mail address`,
          ])
        }
      }
    } finally {
      session.release()
    }
    expect(await count()).toBe(0)
    // What an address may hold is unchanged otherwise: a local part of any other letters and marks.
    await enqueue(t, {
      to: ["o'brien+tag@example.com", 'zoë.ünïcode@example.com'],
      subject: 'S',
      text: 'T',
    })
    expect(await count()).toBe(1)
  })

  test('a domain of other letters is refused naming the domain and asking for its A-labels; the A-labels are taken', async () => {
    // POST /v1/outbox writes such a domain as its A-labels (UTS #46); SQL callers must do so.
    const why = (domain: string) =>
      `is not a valid e-mail address: its domain ${domain} is not written in A-labels: mailer.enqueue_email takes an internationalized domain only as its A-labels (xn--..., as IDNA maps it, UTS #46); POST /v1/outbox converts it`
    for (const [message, field, domain] of [
      [{ to: 'ann@bücher.example' }, 'message.to', 'bücher.example'],
      [
        { to: 'a@example.com', cc: [{ address: 'ann@mañana.example' }] },
        'message.cc[0].address',
        'mañana.example',
      ],
      [{ to: 'a@example.com', bcc: ['Ann <ann@例え.jp>'] }, 'message.bcc[0]', '例え.jp'],
      [{ to: 'a@example.com', from: 'ann@bücher.example' }, 'message.from', 'bücher.example'],
      [
        { to: 'a@example.com', from: { address: 'ann@bücher.example' } },
        'message.from.address',
        'bücher.example',
      ],
    ] as const) {
      const e = await enqueue(t, { ...message, subject: 'S', text: 'T' }).catch((err: Error) => err)
      expect([field, (e as Error).message]).toEqual([field, `mailer: ${field} ${why(domain)}`])
    }
    // A blank or a control character in the domain is no letter: refused as before.
    const e = await enqueue(t, { to: 'ann@bü\u00a0cher.example', subject: 'S', text: 'T' }).catch(
      (err: Error) => err,
    )
    expect((e as Error).message).toBe('mailer: message.to is not a valid e-mail address')
    expect(await count()).toBe(0)
    await enqueue(t, { to: 'ann@xn--bcher-kva.example', subject: 'S', text: 'T' })
    expect(await count()).toBe(1)
  })

  test('a valid message is stored normalised, with defaults', async () => {
    const id = await enqueue(
      t,
      {
        to: ['a@example.com', { address: 'b@example.com', name: 'B' }],
        subject: 'S',
        html: '<p>x</p>',
        attachments: [
          { filename: 'a.png', contentBase64: 'QQ==', contentType: 'image/png', contentId: 'a' },
          { filename: 'b.bin', contentBase64: 'QQ==', contentType: null, contentId: null },
        ],
      },
      { priority: -5, maxAttempts: 4, correlationId: 'req-1', tenant: 'acme' },
    )
    const { rows } = await t.pool.query('select * from mailer.email_outbox where id = $1', [id])
    expect(rows[0]).toMatchObject({
      status: 'pending',
      tenant: 'acme',
      priority: -5,
      max_attempts: 4,
      attempts: 0,
      correlation_id: 'req-1',
      message: {
        to: [{ address: 'a@example.com' }, { address: 'b@example.com', name: 'B' }],
        cc: [],
        subject: 'S',
        html: '<p>x</p>',
        attachments: [
          { filename: 'a.png', contentBase64: 'QQ==', contentType: 'image/png', contentId: 'a' },
          { filename: 'b.bin', contentBase64: 'QQ==', contentType: null, contentId: null },
        ],
      },
    })
  })
})

describe('dedupe keys', () => {
  test('a mail is stored alike with and without a key (0011 inserts one without ON CONFLICT)', async () => {
    const options = {
      tenant: 'acme',
      sendAt: '2030-01-01T09:00:00Z',
      expiresAt: '2030-01-02T09:00:00Z',
      priority: 7,
      maxAttempts: 3,
      correlationId: 'inquiry:7',
    }
    const without = await enqueue(t, ok, options)
    const withKey = await enqueue(t, ok, { ...options, dedupeKey: 'k-7' })
    const { rows } = await t.pool.query(
      `select id, dedupe_key, tenant, priority, send_at, expires_at, max_attempts, correlation_id,
              message, template, status
         from mailer.email_outbox order by id`,
    )
    expect(rows.map((r) => r.id)).toEqual([without, withKey])
    expect(rows[1].dedupe_key).toBe('k-7')
    expect(rows[0]).toEqual({ ...rows[1], id: without, dedupe_key: null })
    expect(rows[0]).toMatchObject({
      tenant: 'acme',
      priority: 7,
      max_attempts: 3,
      correlation_id: 'inquiry:7',
      send_at: new Date('2030-01-01T09:00:00Z'),
      expires_at: new Date('2030-01-02T09:00:00Z'),
    })
    // Without a key, every call is a new mail.
    expect(await enqueue(t, ok, options)).not.toBe(without)
  })

  test('a repeated key returns the existing id and inserts nothing', async () => {
    const a = await enqueue(t, ok, { dedupeKey: 'order-42' })
    const b = await enqueue(t, { ...ok, subject: 'different' }, { dedupeKey: 'order-42' })
    expect(b).toBe(a)
    expect(await count()).toBe(1)
  })

  test('the same key in another tenant is another row', async () => {
    const a = await enqueue(t, ok, { dedupeKey: 'k', tenant: 'one' })
    const b = await enqueue(t, ok, { dedupeKey: 'k', tenant: 'two' })
    expect(b).not.toBe(a)
  })

  test('a repeated key whose row is deleted after the conflict and before the lookup: a new row, never a null id', async () => {
    // deploy/prune-finished.sql deletes finished rows, and a repeat of their key may run meanwhile.
    const old = await enqueue(t, ok, { dedupeKey: 'pruned' })
    // Holds the repeat between its insert (which found the conflict: a statement trigger fires even
    // when ON CONFLICT inserted nothing) and its lookup, until the deleting session commits.
    await t.pool.query(`
      create function public.hold_enqueue() returns trigger language plpgsql as $$
      begin perform pg_advisory_xact_lock(20020); return null; end $$;
      create trigger hold_enqueue after insert on mailer.email_outbox
        for each statement execute function public.hold_enqueue();`)
    const deleter = new pg.Client({ connectionString: t.url })
    await deleter.connect()
    try {
      await deleter.query('begin')
      await deleter.query('select pg_advisory_xact_lock(20020)')
      const repeat = enqueue(t, ok, { dedupeKey: 'pruned' })
      await pollUntil(async () => {
        // This database's lock: another run on the same server takes 20020 in its own.
        const { rowCount } = await t.pool.query(
          `select 1 from pg_locks
            where locktype = 'advisory' and objid = 20020 and not granted
              and database = (select oid from pg_database where datname = current_database())`,
        )
        return rowCount ? true : undefined
      })
      await deleter.query('delete from mailer.email_outbox where id = $1', [old])
      await deleter.query('commit')
      const id = await repeat
      expect(id).toMatch(/^\d+$/)
      expect(id).not.toBe(old)
      const { rows } = await t.pool.query(
        `select id::text from mailer.email_outbox where dedupe_key = 'pruned'`,
      )
      expect(rows).toEqual([{ id }])
    } finally {
      await deleter.end()
      await t.pool.query(`
        drop trigger hold_enqueue on mailer.email_outbox;
        drop function public.hold_enqueue();`)
    }
  })

  test('a repeat past its expiresAt while the first request is still uncommitted waits for it and is answered with its row (0046)', async () => {
    // The first request (before its expiresAt) is inserting; the client, its answer slow, repeats
    // it after expiresAt has passed. Refused at once, it was told 400 "nothing enqueued" for a row
    // that commits a moment later and is sent.
    const first = new pg.Client({ connectionString: t.url })
    await first.connect()
    try {
      await first.query('begin')
      const { rows } = await first.query<{ id: string }>(
        `select mailer.enqueue_email($1::jsonb, $2::jsonb)::text as id`,
        [JSON.stringify(ok), JSON.stringify({ dedupeKey: 'slow-otp' })],
      )
      const id = rows[0]!.id
      const repeat = enqueue(t, ok, { dedupeKey: 'slow-otp', expiresAt: '2020-01-01T00:00:00Z' })
      const outcome = repeat.then(
        (v) => ({ id: v }),
        (e: Error) => ({ error: e.message }),
      )
      // The repeat waits on the first's uncommitted key (a transaction lock), or has already answered.
      await pollUntil(async () => {
        const settled = await Promise.race([outcome, Bun.sleep(0).then(() => undefined)])
        if (settled) return settled
        // A session of this database: a transaction id lock names no database, and another run on
        // the same server has repeats of its own waiting.
        const { rowCount } = await t.pool.query(
          `select 1 from pg_locks
            where locktype = 'transactionid' and not granted
              and pid in (select pid from pg_stat_activity where datname = current_database())`,
        )
        return rowCount ? true : undefined
      })
      await first.query('commit')
      expect(await outcome).toEqual({ id })
      expect(await count()).toBe(1)
    } finally {
      await first.end()
    }
  })

  test('a new request past its expiresAt is still refused and stores nothing, with a key too (0046)', async () => {
    await expect(
      enqueue(t, ok, { dedupeKey: 'late', expiresAt: '2020-01-01T00:00:00Z' }),
    ).rejects.toThrow(/options\.expiresAt must be later than now/)
    expect(await count()).toBe(0)
    // Nothing of it is left: the key is free for a request that is not late.
    const id = await enqueue(t, ok, { dedupeKey: 'late', expiresAt: '2999-01-01T00:00:00Z' })
    expect(id).toMatch(/^\d+$/)
  })

  test('a repeat of a key whose row was stored before 0174 with an empty body is answered with its row; a new key so is refused', async () => {
    // A request taken before 0174 ({"text": ""}), its answer lost: the client's repeat under the
    // same key must get the id the first got, whatever the row holds (it fails at send, unsent).
    const { rows } = await t.pool.query<{ id: string }>(
      `insert into mailer.email_outbox (tenant, dedupe_key, message)
       values ('default', 'taken-before', $1::jsonb) returning id::text`,
      [JSON.stringify({ to: [{ address: 'a@b.co' }], subject: 's', text: '' })],
    )
    const repeat = await enqueue(
      t,
      { to: 'a@b.co', subject: 's', text: '' },
      { dedupeKey: 'taken-before' },
    ).catch((e: Error) => e.message)
    const fresh = await enqueue(
      t,
      { to: 'a@b.co', subject: 's', text: '' },
      { dedupeKey: 'new-key' },
    ).catch((e: Error) => e.message)
    expect([repeat, fresh]).toEqual([
      rows[0]!.id,
      'mailer: message.text must not be empty ("" is no body): a message needs message.text or message.html',
    ])
    expect(await count()).toBe(1)
  })

  test('a key naming a row answers any repeat with it, a blank body, a header twice and a past expiresAt at once; a new key names them in the keyless order (0175)', async () => {
    const judged = (m: Record<string, unknown>, o: Record<string, unknown> = {}) =>
      enqueue(t, { to: 'a@b.co', subject: 's', ...m }, o).then(
        (id) => id,
        // The code and the field named.
        (e: Error & { code?: string }) => `${e.code} ${e.message.split(' ')[1]}`,
      )
    const first = await enqueue(t, ok, { dedupeKey: 'named' })
    const twice = { headers: { 'X-A': '1', 'x-a': '2' } }
    const past = '2000-01-01T00:00:00Z'
    const refusals = [
      [{ text: ' \u00a0\n' }, {}],
      [{ text: '', html: '\u3000' }, {}],
      [{ text: ' ', ...twice }, { expiresAt: past }],
      [{ text: ' ' }, { expiresAt: past }],
    ] as const
    const headerTwice = '22023 message.headers.X-A'
    const blank = '22023 message.text'
    expect(
      await Promise.all(refusals.map(([m, o]) => judged(m, { ...o, dedupeKey: 'named' }))),
    ).toEqual([first, first, first, first])
    expect(
      await Promise.all(
        refusals.flatMap(([m, o], i) => [judged(m, { ...o, dedupeKey: `new ${i}` }), judged(m, o)]),
      ),
    ).toEqual([blank, blank, blank, blank, headerTwice, headerTwice, blank, blank])
    expect(await count()).toBe(1)
  })

  test('concurrent enqueues with one key yield one row and one id', async () => {
    const ids = await Promise.all(
      Array.from({ length: 8 }, () => enqueue(t, ok, { dedupeKey: 'race' })),
    )
    expect(new Set(ids).size).toBe(1)
    expect(await count()).toBe(1)
  })
})

describe('triggers', () => {
  beforeEach(async () => {
    await t.pool.query(`
      create table if not exists public.inquiries (id bigint generated always as identity primary key, name text, email text);
      truncate public.inquiries restart identity;
      insert into mailer.templates (name, subject, text_body, to_addresses) values ('inquiry', 'From {{name}}', 'x', array['sales@example.com']);
      drop trigger if exists inquiries_mail on public.inquiries;
      create trigger inquiries_mail after insert on public.inquiries for each row execute function mailer.enqueue_from_row('inquiry');`)
  })

  /** What an insert into public.`table` meets with `<table>_mail` attached with `options` its setup refuses: 22023, and this message. */
  const insertRefused = async (table: string, options: string) => {
    await t.pool.query(`
      create or replace trigger ${table}_mail after insert on public.${table} for each row
        execute function mailer.enqueue_from_row('inquiry', '${options}');`)
    const e = await t.pool
      .query(`insert into public.${table} (name) values ('x')`)
      .catch((err: Error & { code?: string }) => err)
    expect(e).toMatchObject({ code: '22023' })
    return (e as Error).message
  }

  test('the row trigger stores the template name and the source row, rendering nothing', async () => {
    await t.pool.query(
      `insert into public.inquiries (name, email) values ('Ada', 'ada@example.com')`,
    )
    const { rows } = await t.pool.query(
      'select template, source_row, message, correlation_id from mailer.email_outbox',
    )
    expect(rows).toEqual([
      {
        template: 'inquiry',
        source_row: { id: 1, name: 'Ada', email: 'ada@example.com' },
        message: null,
        correlation_id: 'public.inquiries:1',
      },
    ])
  })

  test('with "columns" the trigger stores only those columns; tenant and correlation id still read the whole row', async () => {
    // The source row is kept as long as the outbox row and returned by GET /v1/outbox/{id}: a
    // password hash or a token in the application's row must not be copied there with it.
    await t.pool.query(`
      create table if not exists public.accounts (id bigint generated always as identity primary key,
        org text, name text, email text, password_hash text);
      truncate public.accounts restart identity;
      create or replace trigger accounts_mail after insert on public.accounts for each row
        execute function mailer.enqueue_from_row('inquiry', '{"columns": ["name", "email", "nickname"], "tenantColumn": "org"}');`)
    await t.pool.query(
      `insert into public.accounts (org, name, email, password_hash) values ('acme', 'Ada', 'ada@example.com', 'x-secret-hash')`,
    )
    const { rows } = await t.pool.query(
      'select tenant, template, source_row, correlation_id from mailer.email_outbox',
    )
    expect(rows).toEqual([
      {
        tenant: 'acme',
        template: 'inquiry',
        // A named column the table lacks is left out (a placeholder naming it fails at send).
        source_row: { name: 'Ada', email: 'ada@example.com' },
        correlation_id: 'public.accounts:1',
      },
    ])
    // Not a list of names: the trigger's setup is wrong, and the insert fails naming the option.
    for (const columns of ['"name"', '[]', '["name", 7]']) {
      expect(await insertRefused('accounts', `{"columns": ${columns}}`)).toMatch(
        /accounts_mail on public\.accounts: options\.columns must be a non-empty array of column names/,
      )
    }
    expect(await count()).toBe(1)
  })

  test('options the trigger refuses fail the insert naming the trigger, its table and the option', async () => {
    // The application inserting into its own table passes no options: a refusal that names only
    // "options.sendAt" points at nothing it wrote. enqueue_email's options copied into a trigger
    // (sendAt, dedupeKey) are the likely mistake.
    await t.pool.query(`
      create table if not exists public.orders (id bigint generated always as identity primary key, name text);`)
    const refusals: [string, RegExp][] = [
      [
        '{"sendAt": "2030-01-01T00:00:00Z"}',
        /options\.sendAt is not a known option \(tenant, tenantColumn, priority, maxAttempts, columns\)/,
      ],
      ['{"priority": 500}', /options\.priority must be an integer from -100/],
      ['{"tenant": "a b"}', /options\.tenant must be 1-200 characters/],
      ['not json', /the second argument must be JSON options/],
    ]
    for (const [options, problem] of refusals) {
      const message = await insertRefused('orders', options)
      expect(message).toMatch(/^mailer\.enqueue_from_row: trigger orders_mail on public\.orders: /)
      expect(message).toMatch(problem)
    }
    // No argument at all: the template's name is missing, said in the same form.
    await t.pool.query(`
      create or replace trigger orders_mail after insert on public.orders for each row
        execute function mailer.enqueue_from_row();`)
    const e = await t.pool
      .query(`insert into public.orders (name) values ('x')`)
      .catch((err: Error & { code?: string }) => err)
    expect(e).toMatchObject({ code: '22023' })
    expect((e as Error).message).toBe(
      "mailer.enqueue_from_row: trigger orders_mail on public.orders: needs a template name argument, e.g. enqueue_from_row('inquiry')",
    )
    expect(await count()).toBe(0)
  })

  test('a row id that makes the correlation id longer than 200 characters gives none, and the mail can be settled', async () => {
    // The correlation index (0010) takes an entry when a row is settled: one over its ~2.7 kB
    // limit failed the settlement after the send, with its whole batch, and the leases' end sent
    // them all again, over and over.
    await t.pool.query(`
      create table if not exists public.documents (id text, title text);
      truncate public.documents;
      create or replace trigger documents_mail after insert on public.documents for each row
        execute function mailer.enqueue_from_row('inquiry');`)
    const long = (
      await t.pool.query(`select string_agg(md5(g::text), '') as s from generate_series(1, 100) g`)
    ).rows[0].s
    const fits = 'x'.repeat(200 - 'public.documents:'.length)
    await t.pool.query('insert into public.documents (id) values ($1), ($2)', [long, fits])
    const { rows } = await t.pool.query(
      'select correlation_id from mailer.email_outbox order by id',
    )
    expect(rows).toEqual([{ correlation_id: null }, { correlation_id: `public.documents:${fits}` }])
    const sent = await t.pool.query(
      `update mailer.email_outbox set status = 'sent', sent_at = now()`,
    )
    expect(sent.rowCount).toBe(2)
  })

  test('an unknown template name fails the application’s insert loudly', async () => {
    await t.pool.query(`
      drop trigger inquiries_mail on public.inquiries;
      create trigger inquiries_mail after insert on public.inquiries for each row execute function mailer.enqueue_from_row('nope');`)
    await expect(t.pool.query(`insert into public.inquiries (name) values ('x')`)).rejects.toThrow(
      /unknown template "nope"/,
    )
    const { rows } = await t.pool.query('select count(*)::int as n from public.inquiries')
    expect(rows[0].n).toBe(0)
  })

  test('attached other than AFTER … FOR EACH ROW, it fails the insert loudly and enqueues nothing', async () => {
    // BEFORE: its NULL return silently dropped the application's row while the mail was queued;
    // FOR EACH STATEMENT: a mail with no source row per statement.
    for (const timing of ['before insert', 'after insert']) {
      for (const level of timing === 'before insert' ? ['row', 'statement'] : ['statement']) {
        await t.pool.query(`
          drop trigger inquiries_mail on public.inquiries;
          create trigger inquiries_mail ${timing} on public.inquiries for each ${level}
            execute function mailer.enqueue_from_row('inquiry');`)
        const e = await t.pool
          .query(`insert into public.inquiries (name) values ('x')`)
          .catch((err: Error & { code?: string }) => err)
        expect(e).toBeInstanceOf(Error)
        expect(e).toMatchObject({ code: '22023' })
        expect((e as Error).message).toMatch(/inquiries_mail on public\.inquiries.*AFTER/)
      }
    }
    const { rows } = await t.pool.query(
      'select (select count(*)::int from public.inquiries) as app, (select count(*)::int from mailer.email_outbox) as mail',
    )
    expect(rows).toEqual([{ app: 0, mail: 0 }])
    // INSTEAD OF on a view keeps no row that its NULL return could drop: it still enqueues.
    await t.pool.query(`
      create or replace view public.inquiry_requests as select id, name, email from public.inquiries;
      create trigger inquiry_requests_mail instead of insert on public.inquiry_requests
        for each row execute function mailer.enqueue_from_row('inquiry');`)
    await t.pool.query(`insert into public.inquiry_requests (id, name) values (7, 'Ada')`)
    const mails = await t.pool.query('select template, source_row from mailer.email_outbox')
    expect(mails.rows).toEqual([
      { template: 'inquiry', source_row: { id: 7, name: 'Ada', email: null } },
    ])
  })

  test('attached AFTER UPDATE it stores the row as updated, AFTER DELETE the row deleted (not an empty mail bound to fail)', async () => {
    await t.pool.query(`
      drop trigger inquiries_mail on public.inquiries;
      insert into public.inquiries (name, email) values ('Ada', 'ada@example.com');
      create trigger inquiries_changed after update or delete on public.inquiries for each row
        execute function mailer.enqueue_from_row('inquiry');`)
    await t.pool.query(`update public.inquiries set name = 'Ada L.'`)
    await t.pool.query(`delete from public.inquiries`)
    const { rows } = await t.pool.query(
      'select source_row, correlation_id from mailer.email_outbox order by id',
    )
    expect(rows).toEqual([
      {
        source_row: { id: 1, name: 'Ada L.', email: 'ada@example.com' },
        correlation_id: 'public.inquiries:1',
      },
      {
        source_row: { id: 1, name: 'Ada L.', email: 'ada@example.com' },
        correlation_id: 'public.inquiries:1',
      },
    ])
  })

  test('attached AFTER UPDATE, every update of a row enqueues, one that changes nothing too; the guide’s WHEN clause keeps to the change meant', async () => {
    await t.pool.query(`
      create table if not exists public.shipments (id bigint generated always as identity primary key,
        name text, email text, status text);
      truncate public.shipments restart identity;
      insert into public.shipments (name, email, status) values ('Ada', 'ada@example.com', 'new');
      create or replace trigger shipments_changed after update on public.shipments for each row
        execute function mailer.enqueue_from_row('inquiry');`)
    await t.pool.query(`update public.shipments set name = name`)
    await t.pool.query(`update public.shipments set email = 'ada@example.org'`)
    expect(await count()).toBe(2)
    // As README shows it: a mail when status becomes 'shipped', and for no other update.
    await t.pool.query(`
      drop trigger shipments_changed on public.shipments;
      create or replace trigger shipments_shipped after update of status on public.shipments for each row
        when (new.status = 'shipped' and old.status is distinct from new.status)
        execute function mailer.enqueue_from_row('inquiry');`)
    await t.pool.query(`update public.shipments set name = 'Ada L.'`)
    await t.pool.query(`update public.shipments set status = 'paid'`)
    await t.pool.query(`update public.shipments set status = 'shipped'`)
    await t.pool.query(`update public.shipments set status = 'shipped'`)
    const { rows } = await t.pool.query(
      `select source_row->>'status' as status from mailer.email_outbox order by id`,
    )
    expect(rows).toEqual([{ status: 'new' }, { status: 'new' }, { status: 'shipped' }])
  })

  test('a transaction to be prepared (two-phase commit) enqueues, by function and trigger, with mailer.notify off', async () => {
    // PREPARE TRANSACTION refuses a transaction that has sent a NOTIFY: every enqueue sent one, so
    // an application under an XA/JTA transaction manager could neither enqueue nor insert into a
    // table carrying the trigger. The cluster allows prepared transactions (test/support/postgres.ts).
    await t.pool.query(`
      create table if not exists public.xa_orders (id bigint generated always as identity primary key, name text);
      create or replace trigger xa_orders_mail after insert on public.xa_orders for each row
        execute function mailer.enqueue_from_row('inquiry');`)
    // On any server: with the setting an enqueue and the trigger commit their rows and notify no one.
    const before = await count()
    const heard = await payloadsHeard(t, async (c) => {
      await c.query('begin')
      await c.query('set local mailer.notify = off')
      await c.query('select mailer.enqueue_email($1::jsonb)', [JSON.stringify(ok)])
      await c.query(`insert into public.xa_orders (name) values ('Ada')`)
      await c.query('commit')
    })
    expect([heard, await count()]).toEqual([[], before + 2])
    await t.pool.query('delete from mailer.email_outbox')
    // PREPARE itself where the server allows it (TEST_DATABASE_URL's may run with the default 0;
    // the embedded cluster runs with 4).
    const allowed = await t.pool.query<{ n: number }>(
      `select current_setting('max_prepared_transactions')::int as n`,
    )
    if (allowed.rows[0]!.n < 1) return
    const gid = `outbox-xa-${process.pid}`
    const prepared = async (setting: string) => {
      const c = new pg.Client({ connectionString: t.url })
      await c.connect()
      try {
        await c.query('begin')
        if (setting) await c.query(setting)
        await c.query('select mailer.enqueue_email($1::jsonb)', [JSON.stringify(ok)])
        await c.query(`insert into public.xa_orders (name) values ('Ada')`)
        await c.query(`prepare transaction '${gid}'`)
        await t.pool.query(`commit prepared '${gid}'`)
        return 'committed'
      } catch (err) {
        await c.query('rollback').catch(() => {})
        return (err as { code?: string }).code
      } finally {
        await t.pool.query(`rollback prepared '${gid}'`).catch(() => {})
        await c.end()
      }
    }
    // 0A000: "cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY".
    expect(await prepared('')).toBe('0A000')
    expect(await count()).toBe(0)
    expect(await prepared('set local mailer.notify = off')).toBe('committed')
    const { rows } = await t.pool.query(
      'select template, source_row is not null as has_row from mailer.email_outbox order by id',
    )
    expect(rows).toEqual([
      { template: null, has_row: false },
      { template: 'inquiry', has_row: true },
    ])
  })

  test('a rolled-back transaction leaves no row and sends no notification', async () => {
    const heard = await payloadsHeard(t, async (c) => {
      await c.query('begin')
      await c.query(`insert into public.inquiries (name) values ('rolled back')`)
      await c.query('rollback')
      // A committed insert afterwards proves the listener works and orders after the rollback.
      await c.query(`insert into public.inquiries (name) values ('committed')`)
    })
    // A transaction that inserted one row names it (sql/0030): the committed one, never the other.
    const { rows } = await t.pool.query<{ id: string }>('select id from mailer.email_outbox')
    expect(heard).toEqual([rows[0]!.id])
    expect(await count()).toBe(1)
  })

  // The trigger inserts one outbox row per source row, each a statement of its own: the first
  // names its row (sql/0030), every later one sends the empty hint, folded into one.
  test('a multi-row insert folds into two notifications: the first row, then the empty hint', async () => {
    const heard = await payloadsHeard(t, (c) =>
      c.query(`insert into public.inquiries (name) select 'n' || g from generate_series(1, 50) g`),
    )
    const { rows } = await t.pool.query<{ id: string }>(
      'select min(id)::text as id from mailer.email_outbox',
    )
    expect(heard).toEqual([rows[0]!.id, ''])
    expect(await count()).toBe(50)
  })
})

test('the errors the deploy guide tells application code to catch: 22023 beginning "mailer", 22P02 for what is no JSON', async () => {
  const caught = async (statement: string) => {
    const e = await t.pool.query(statement).catch((err: Error & { code?: string }) => err)
    return e instanceof Error ? { code: (e as { code?: string }).code, message: e.message } : e
  }
  await t.pool.query(`
    create table if not exists public.leads (id bigint generated always as identity primary key, name text);
    insert into mailer.templates (name, subject, text_body, to_addresses) values ('lead', 'Lead {{name}}', 'x', array['sales@example.com']);`)
  const attached = async (how: string, args: string) => {
    await t.pool.query(`
      drop trigger if exists leads_mail on public.leads;
      create trigger leads_mail ${how} on public.leads for each row execute function mailer.enqueue_from_row(${args});`)
    return caught(`insert into public.leads (name) values ('x')`)
  }
  const refusals = [
    await caught(`select mailer.enqueue_email('{"to": "a@example.com", "subject": "s"}')`),
    await caught(
      `select mailer.enqueue_email('{"to": "a@example.com", "subject": "s", "text": "t"}', '{"sendAt": "soon"}')`,
    ),
    await attached('after insert', `'nope'`),
    await attached('after insert', `'lead', '{"dedupeKey": "k"}'`),
    await attached('before insert', `'lead'`),
  ]
  for (const r of refusals) {
    expect(r).toMatchObject({ code: '22023', message: expect.stringMatching(/^mailer[:.]/) })
  }
  expect(await caught(`select mailer.enqueue_email('{not json}')`)).toMatchObject({
    code: '22P02',
  })
  expect(await count()).toBe(0)
  const { rows } = await t.pool.query('select count(*)::int as n from public.leads')
  expect(rows[0].n).toBe(0)
})

describe('the SQL surface DESIGN.md names (a rename fails here, not in a user’s trigger)', () => {
  /** `format_type` of each column of `mailer.<table>`, by name. */
  const columns = async (table: string) => {
    const { rows } = await t.pool.query<{ name: string; type: string }>(
      `select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = $1::regclass and attnum > 0 and not attisdropped`,
      [`mailer.${table}`],
    )
    return Object.fromEntries(rows.map((r) => [r.name, r.type]))
  }

  test('mailer.enqueue_email(message jsonb, options jsonb default ’{}’) returns bigint; mailer.enqueue_from_row() a trigger', async () => {
    const { rows } = await t.pool.query(
      `select p.proname as name, pg_get_function_arguments(p.oid) as args,
              pg_get_function_result(p.oid) as result
         from pg_proc p where p.pronamespace = 'mailer'::regnamespace
          and p.proname in ('enqueue_email', 'enqueue_from_row') order by p.proname`,
    )
    expect(rows).toEqual([
      {
        name: 'enqueue_email',
        args: "message jsonb, options jsonb DEFAULT '{}'::jsonb",
        result: 'bigint',
      },
      { name: 'enqueue_from_row', args: '', result: 'trigger' },
    ])
    // Called as a user may write it: by the arguments' names, options left to their default.
    const { rows: named } = await t.pool.query<{ id: string }>(
      'select mailer.enqueue_email(message => $1::jsonb) as id',
      [JSON.stringify(ok)],
    )
    expect(named[0]!.id).toMatch(/^\d+$/)
  })

  test('every message field and option it names is taken, and lands in the column it names', async () => {
    const message = {
      from: 'sales@example.com',
      to: ['a@example.com', { address: 'b@example.com', name: 'B' }],
      cc: 'c@example.com',
      bcc: [{ address: 'd@example.com' }],
      replyTo: 'r@example.com',
      subject: 'S',
      text: 'T',
      html: '<p>H</p>',
      headers: { 'X-Order': '7' },
      attachments: [{ filename: 'a.txt', contentBase64: 'QQ==' }],
    }
    const options = {
      tenant: 'acme',
      dedupeKey: 'k-1',
      sendAt: '2030-01-01T09:00:00Z',
      expiresAt: '2030-01-02T09:00:00Z',
      priority: 3,
      maxAttempts: 4,
      correlationId: 'c-1',
    }
    const id = await enqueue(t, message, options)
    const { rows } = await t.pool.query(
      `select id::text, status, tenant, dedupe_key, priority, send_at, expires_at, attempts,
              max_attempts, correlation_id, last_error_code, last_error, sent_at,
              created_at is not null as created, message ?& $2 as "everyField"
         from mailer.email_outbox where id = $1`,
      [id, Object.keys(message)],
    )
    expect(rows).toEqual([
      {
        id,
        status: 'pending',
        tenant: 'acme',
        dedupe_key: 'k-1',
        priority: 3,
        send_at: new Date(options.sendAt),
        expires_at: new Date(options.expiresAt),
        attempts: 0,
        max_attempts: 4,
        correlation_id: 'c-1',
        last_error_code: null,
        last_error: null,
        sent_at: null,
        created: true,
        everyField: true,
      },
    ])
  })

  test('mailer.email_outbox’s columns and statuses, mailer.templates’ columns, by name and type', async () => {
    expect(await columns('email_outbox')).toMatchObject({
      id: 'bigint',
      status: 'text',
      tenant: 'text',
      dedupe_key: 'text',
      priority: 'smallint',
      send_at: 'timestamp with time zone',
      attempts: 'integer',
      max_attempts: 'integer',
      last_error_code: 'text',
      last_error: 'text',
      created_at: 'timestamp with time zone',
      sent_at: 'timestamp with time zone',
      lease_owner: 'text',
      lease_token: 'uuid',
      lease_expires_at: 'timestamp with time zone',
      message: 'jsonb',
    })
    // The status check names exactly DESIGN.md's five (a review state would be a sixth, on purpose).
    const { rows } = await t.pool.query<{ def: string }>(
      `select pg_get_constraintdef(oid) as def from pg_constraint
        where conrelid = 'mailer.email_outbox'::regclass and contype = 'c'
          and pg_get_constraintdef(oid) like 'CHECK ((status = ANY%'`,
    )
    expect(rows.map((r) => [...r.def.matchAll(/'(\w+)'::text/g)].map((m) => m[1]))).toEqual([
      ['pending', 'sending', 'sent', 'failed', 'cancelled'],
    ])
    expect(await columns('templates')).toMatchObject({
      name: 'text',
      subject: 'text',
      text_body: 'text',
      html_body: 'text',
      to_addresses: 'text[]',
      cc_addresses: 'text[]',
      bcc_addresses: 'text[]',
      reply_to: 'text',
      from_address: 'text',
    })
    // html_body and from_address may be NULL (NULL from_address: MAIL_FROM).
    const { rows: nullable } = await t.pool.query(
      `select attname as name from pg_attribute where attrelid = 'mailer.templates'::regclass
          and attname in ('html_body', 'from_address') and not attnotnull order by attname`,
    )
    expect(nullable.map((r) => r.name)).toEqual(['from_address', 'html_body'])
  })
})
