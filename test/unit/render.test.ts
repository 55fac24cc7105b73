// renderLease: a template filled from its source row and held to a stored message's limits; retryDelayMs.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { TemplateRow } from '../../src/db/schema.ts'
import { retryDelayMs } from '../../src/outbox/backoff.ts'
import type { Lease } from '../../src/outbox/claim.ts'
import { renderLease } from '../../src/outbox/render.ts'
import { RenderError } from '../../src/outbox/render-error.ts'
import { BLANK_BODIES } from '../support/blank-bodies.ts'
import { claimedLease } from '../support/claimed-lease.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const lease = (over: Partial<Lease>): Lease => claimedLease({ correlationId: 'c-1', ...over })

const template = (over: Partial<TemplateRow>): TemplateRow => ({
  name: 'inquiry',
  subject: 'Inquiry from {{name}}',
  text_body: '{{name}} wrote: {{message}}',
  html_body: '<p>{{name}}</p><p>{{message}}</p>',
  to_addresses: ['sales@example.com'],
  cc_addresses: [],
  bcc_addresses: [],
  reply_to: '{{name}} <{{email}}>',
  from_address: null,
  created_at: new Date(),
  updated_at: new Date(),
  ...over,
})

const render = (row: Record<string, unknown>, t: Partial<TemplateRow> = {}) =>
  renderLease(
    lease({ template: 'inquiry', sourceRow: row }),
    new Map([['inquiry', template(t)]]),
    'outbox@example.com',
  )

describe('renderLease', () => {
  test('fills templates from the source row; only html_body escapes', () => {
    const m = render({
      name: 'Tom & <Jerry>',
      email: 'tj@example.com',
      message: '{{name}} "quoted"',
    })
    expect(m.subject).toBe('Inquiry from Tom & <Jerry>')
    expect(m.text).toBe('Tom & <Jerry> wrote: {{name}} "quoted"')
    expect(m.html).toBe('<p>Tom &amp; &lt;Jerry&gt;</p><p>{{name}} &quot;quoted&quot;</p>')
    expect(m.replyTo).toEqual([{ name: 'Tom & <Jerry>', address: 'tj@example.com' }])
    expect(m.from).toEqual({ address: 'outbox@example.com' })
    expect(m.to).toEqual([{ address: 'sales@example.com' }])
  })

  test("triple braces put a column into html_body unescaped, as HTML: a customer's input too", () => {
    // Standard mustache: {{{col}}} and {{& col}} skip the escaping; README warns of them. Elsewhere
    // nothing is escaped, so there they are {{col}}.
    const input = '<a href="https://evil.example">Reset your password</a><img src=x>'
    const m = render(
      { name: 'Ann', email: 'ann@example.com', message: input },
      {
        subject: 'From {{{name}}}',
        text_body: '{{message}}|{{{message}}}|{{& message}}',
        html_body: '<p>{{message}}</p><div>{{{message}}}</div><div>{{& message}}</div>',
      },
    )
    // Double braces: every character HTML gives a meaning to is an entity, no tag is left.
    const escaped =
      '&lt;a href&#x3D;&quot;https:&#x2F;&#x2F;evil.example&quot;&gt;Reset your password&lt;&#x2F;a&gt;&lt;img src&#x3D;x&gt;'
    expect(m.html).toBe(`<p>${escaped}</p><div>${input}</div><div>${input}</div>`)
    expect(m.text).toBe(`${input}|${input}|${input}`)
    expect(m.subject).toBe('From Ann')
  })

  test("a template's cc and bcc addresses are filled from the source row too", () => {
    const m = render(
      { name: 'Ann', email: 'ann@example.com', message: 'm' },
      {
        cc_addresses: ['{{email}}', 'desk@example.com'],
        bcc_addresses: ['{{name}} <audit@example.com>'],
      },
    )
    expect(m.to).toEqual([{ address: 'sales@example.com' }])
    expect(m.cc).toEqual([{ address: 'ann@example.com' }, { address: 'desk@example.com' }])
    expect(m.bcc).toEqual([{ name: 'Ann', address: 'audit@example.com' }])
  })

  test('a value is inserted once, never rendered again', () => {
    const m = render({ name: '{{email}}', email: 'x@example.com', message: 'm' })
    expect(m.subject).toBe('Inquiry from {{email}}')
  })

  test('a placeholder with no column is a template error, not an empty string', () => {
    expect(() => render({ name: 'A', email: 'a@example.com' })).toThrow(
      /\{\{message\}\} has no column/,
    )
  })

  test('a placeholder named like a built-in property of an object is a template error, not its junk', () => {
    const row = { name: 'A', email: 'a@example.com', message: 'm', order: { id: 7 } }
    for (const name of [
      'constructor',
      'toString',
      '__proto__',
      'hasOwnProperty',
      'order.constructor',
    ])
      expect(() => render(row, { text_body: `{{${name}}}` })).toThrow(`{{${name}}} has no column`)
  })

  test("a row's own column of such a name fills it", () => {
    const m = render(
      { name: 'A', email: 'a@example.com', message: 'm', constructor: 'Ada' },
      { text_body: '{{constructor}}' },
    )
    expect(m.text).toBe('Ada')
  })

  test('a column whose name holds a dot fills the placeholder of its whole name, before a path', () => {
    // A quoted column ("order.id") was reachable by no placeholder: {{order.id}} was read as the
    // path order → id, and the row failed with template_error naming a column the table has.
    const row = {
      name: 'A',
      email: 'a@example.com',
      message: 'm',
      'order.id': 42,
      'Mixed Case': 'mc',
      order: { total: 9 },
    }
    const m = render(row, {
      text_body: '{{order.id}} {{Mixed Case}} {{order.total}} {{#order.id}}[{{.}}]{{/order.id}}',
    })
    expect(m.text).toBe('42 mc 9 [42]')
  })

  test('a section named like one is a template error too', () => {
    const row = { name: 'A', email: 'a@example.com', message: 'm' }
    expect(() => render(row, { text_body: '{{#constructor}}x{{/constructor}}' })).toThrow(
      '{{constructor}} has no column',
    )
  })

  test('inside a section, a built-in property name finds no value either: it renders as nothing', () => {
    const row = { name: 'A', email: 'a@example.com', message: 'm', items: [{ sku: 'x' }] }
    const m = render(row, {
      text_body:
        '{{#items}}[{{sku}}{{constructor}}{{toString}}{{__proto__}}{{sku.constructor}}]{{/items}}',
    })
    expect(m.text).toBe('[x]')
  })

  test('a recipient or sender that renders invalid is a template error', () => {
    for (const field of [
      { to_addresses: ['{{email}}'] },
      { cc_addresses: ['{{email}}'] },
      { from_address: '{{email}}' },
    ]) {
      try {
        render({ name: 'A', email: 'not an address', message: 'm' }, field)
        throw new Error('expected a RenderError')
      } catch (e) {
        expect(e).toBeInstanceOf(RenderError)
        expect((e as RenderError).code).toBe('template_error')
      }
    }
  })

  test('an address a NULL column leaves empty is left out, not a template error; no recipient at all is one', () => {
    // The README's inquiry template: reply_to '{{name}} <{{email}}>'. An inquiry that left its
    // e-mail empty failed the whole notification to sales.
    const row = { name: 'Ada', email: null, message: 'm' }
    const m = render(row, {
      cc_addresses: ['{{email}}', 'desk@example.com'],
      from_address: '{{email}}',
    })
    expect(m.replyTo).toEqual([])
    expect(m.cc).toEqual([{ address: 'desk@example.com' }])
    expect(m.from).toEqual({ address: 'outbox@example.com' })
    expect(m.to).toEqual([{ address: 'sales@example.com' }])
    expect(render({ ...row, email: '  ' }).replyTo).toEqual([])
    try {
      render(row, { to_addresses: ['{{email}}'], reply_to: null })
      throw new Error('expected a RenderError')
    } catch (e) {
      expect(e).toBeInstanceOf(RenderError)
      expect((e as RenderError).code).toBe('template_error')
      expect((e as Error).message).toMatch(/no recipient/)
    }
    // A name without its address is not empty: still an error.
    expect(() => render(row, { cc_addresses: ['{{name}}'] })).toThrow(
      /cc_addresses\[0\] is not a valid/,
    )
  })

  test("a reply_to a visitor's typo leaves no address is left out: the notification still goes to its recipients", () => {
    // The README's inquiry template takes reply_to from the form: '{{name}} <{{email}}>'. A visitor
    // who mistyped their e-mail failed the whole notification to sales (template_error), though
    // the insert had committed and nobody was told.
    for (const email of ['not-an-email', 'ann@', 'ann at example.com']) {
      const m = render({ name: 'Ann', email, message: 'm' })
      expect({ to: m.to, replyTo: m.replyTo }).toEqual({
        to: [{ address: 'sales@example.com' }],
        replyTo: [],
      })
    }
  })

  test('a rendered name holding an address (a list in one string) is refused, not sent to the last address; a quoted name is taken', () => {
    // "Ann <ann@…>, Bob <bob@…>" was read as bob@… named "Ann <ann@…>, Bob": Ann's mail was lost.
    const lists = [
      'Ann <ann@example.com>, Bob <bob@example.com>',
      'ann@example.com, Bob <bob@example.com>',
      'Ann <ann@example.com> Bob <bob@example.com>',
      '"Ann" <ann@example.com>; "Bob" <bob@example.com>',
      // A blank for a separator, and another address in the name: which one was meant is unknown.
      'ann@example.com Bob <bob@example.com>',
      'Ann ann@example.com <bob@example.com>',
      // Another address in brackets or as a link is another address still.
      'Ann (bob@example.com) <ann@example.com>',
      'mailto:bob@example.com <ann@example.com>',
    ]
    for (const emails of lists) {
      for (const field of [{ to_addresses: ['{{emails}}'] }, { from_address: '{{emails}}' }]) {
        const e = (() => {
          try {
            return render({ name: 'A', emails, email: 'a@example.com', message: 'm' }, field)
          } catch (err) {
            return err
          }
        })()
        expect([emails, field, (e as RenderError).code]).toEqual([emails, field, 'template_error'])
      }
      // A reply-to the source row makes invalid is left out, as a mistyped one is.
      const m = render({ name: emails, email: 'bob@example.com', message: 'm' })
      expect([emails, m.replyTo]).toEqual([emails, []])
    }
    // RFC 5322's quoted name may hold anything but a quote: the writer's own, taken whole.
    for (const [emails, name] of [
      ['"Ann <ann@example.com>, Bob" <bob@example.com>', 'Ann <ann@example.com>, Bob'],
      ['"Smith, Jones & Co" <bob@example.com>', 'Smith, Jones & Co'],
      ['Smith, Jones & Co <bob@example.com>', 'Smith, Jones & Co'],
      ['Ann @ Home <bob@example.com>', 'Ann @ Home'],
      // A visitor who typed an address into the name field: one address shown, none lost.
      ['ann@example.com <ann@example.com>', 'ann@example.com'],
      ['Ann ANN@example.com <ann@example.com>', 'Ann ANN@example.com'],
      // Its own address in brackets, quotes, as a link or closing a sentence: none other is named.
      ['Ann (ann@example.com) <ann@example.com>', 'Ann (ann@example.com)'],
      ["Ann 'ann@example.com' <ann@example.com>", "Ann 'ann@example.com'"],
      ['mailto:ann@example.com <ann@example.com>', 'mailto:ann@example.com'],
      ['Write to ann@example.com. <ann@example.com>', 'Write to ann@example.com.'],
      ['ACME <bob@example.com>', 'ACME'],
    ] as const) {
      const m = render(
        { name: 'A', emails, email: 'a@example.com', message: 'm' },
        {
          to_addresses: ['{{emails}}'],
        },
      )
      const address = String(emails).replace(/^.*<|>$/gs, '')
      expect([emails, m.to]).toEqual([emails, [{ address, name }]])
    }
    // The contact form's reply-to, `{{name}} <{{email}}>`, with the address typed as the name too:
    // kept, so an answer reaches the visitor.
    const m = render({ name: 'ann@example.com', email: 'ann@example.com', message: 'm' })
    expect(m.replyTo).toEqual([{ address: 'ann@example.com', name: 'ann@example.com' }])
  })

  test("a rendered address is held to enqueue's 320 characters, counted as SQL counts them (code points)", () => {
    const refused = (email: string) => {
      try {
        return render(
          { name: 'A', email, message: 'm' },
          { cc_addresses: ['{{name}} <{{email}}>'] },
        ).cc
      } catch (e) {
        return (e as RenderError).code
      }
    }
    const domain = '@example.com'
    const long = (n: number, unit = 'a') => `${unit.repeat(n - domain.length)}${domain}`
    expect(refused(long(321))).toBe('template_error')
    expect(refused(long(320))).toEqual([{ name: 'A', address: long(320) }])
    // 320 characters to length(), 330 UTF-16 units: within is_email_address, so within render's too.
    const emoji = `${'\u{1F600}'.repeat(10)}${'a'.repeat(320 - 10 - domain.length)}${domain}`
    expect(refused(emoji)).toEqual([{ name: 'A', address: emoji }])
  })

  test('a json or jsonb column (an object or array in the source row) renders as its JSON text', () => {
    const details = { plan: 'pro', seats: 3, tags: ['a', 'b'], items: [{ sku: 1 }] }
    const m = render(
      { name: 'Ann', email: 'ann@example.com', message: details },
      {
        subject: 'Plan {{message.plan}} for {{message.tags}}; {{message.items}}',
        html_body: '{{message}}|{{{message}}}',
      },
    )
    // An array of plain values (a text[] column) keeps Mustache's join, as before.
    expect(m.subject).toBe('Plan pro for a,b; [{"sku":1}]')
    expect(m.text).toBe(`Ann wrote: ${JSON.stringify(details)}`)
    const json = JSON.stringify(details)
    expect(m.html).toBe(`${json.replaceAll('"', '&quot;')}|${json}`)
  })

  // What rendering the template refuses, as [code, message]; null when it renders.
  const refusalOf = (row: Record<string, unknown>, t: Partial<TemplateRow>) => {
    try {
      render({ email: 'a@example.com', message: 'm', ...row }, t)
      return null
    } catch (e) {
      return [(e as RenderError).code, (e as Error).message]
    }
  }

  test("a template's rendered subject is held to a stored one's bar: not empty, and cut to 998 rather than failed", () => {
    const refusal = (name: string, subject = '{{name}}') => refusalOf({ name }, { subject })
    const subjectOf = (name: string, subject = '{{name}}') =>
      render({ email: 'a@example.com', message: 'm', name }, { subject }).subject
    expect(refusal(' \r\n\u0001 ')).toEqual(['template_error', 'subject is empty after rendering'])
    // 998 as SQL counts them (an emoji is one), folded onto one line first.
    expect(subjectOf('\u{1f4e7}'.repeat(998))).toBe('\u{1f4e7}'.repeat(998))
    // A column filled in past that: cut, the mail still goes.
    expect(subjectOf('N'.repeat(999))).toBe(`${'N'.repeat(997)}…`)
    expect(subjectOf('\u{1f4e7}'.repeat(1200))).toBe(`${'\u{1f4e7}'.repeat(997)}…`)
    expect(subjectOf(`${'N'.repeat(997)}\r\n`, '{{name}}\r\nx')).toBe(`${'N'.repeat(997)}…`)
  })

  test('a template whose bodies render blank fails template_error naming it and its fields, rather than mailing nothing', () => {
    // A NULL or empty column (a form's empty note) filled into the only body: an empty mail to the
    // recipient, before this. Blank as a stored body is (blank-body.ts); markup is a body.
    const words = (fields: string, are = 'are') =>
      `${fields} of template "inquiry" ${are} empty after rendering (nothing but blanks): a mail without a body is not sent`
    for (const note of [null, '', ' \r\n\t', '\u00a0\u3000\u200b']) {
      expect([
        note,
        refusalOf({ name: 'Ann', note }, { text_body: '{{note}}', html_body: null }),
        refusalOf({ name: 'Ann', note }, { text_body: null, html_body: '{{note}}' }),
        refusalOf({ name: 'Ann', note }, { text_body: ' {{note}}\n', html_body: '{{{note}}}' }),
      ]).toEqual([
        note,
        ['template_error', words('text_body', 'is')],
        ['template_error', words('html_body', 'is')],
        ['template_error', words('text_body and html_body')],
      ])
    }
    // One body that shows something is the mail; markup around an empty column is a body.
    expect(
      refusalOf({ name: 'Ann', note: null }, { text_body: '{{note}}', html_body: '<p>Hi</p>' }),
    ).toBeNull()
    expect(
      refusalOf({ name: 'Ann', note: null }, { text_body: 'Hi {{note}}', html_body: '{{note}}' }),
    ).toBeNull()
    expect(
      refusalOf({ name: 'Ann', note: null }, { text_body: null, html_body: '<p>{{note}}</p>' }),
    ).toBeNull()
    // README's way out: the template's own words for a row without a note.
    expect(
      render(
        { name: 'Ann', email: 'a@example.com', note: null },
        { text_body: '{{^note}}No note was left.{{/note}}{{note}}', html_body: null },
      ).text,
    ).toBe('No note was left.')
  })

  test("a template's recipients are at most 500, as a stored message's, counted before rendering", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.com`)
    const row = { name: 'n' }
    expect(refusalOf(row, { to_addresses: many(300), cc_addresses: many(200) })).toBeNull()
    expect(
      refusalOf(row, {
        to_addresses: many(300),
        cc_addresses: many(100),
        bcc_addresses: many(101),
      }),
    ).toEqual([
      'template_error',
      'to_addresses, cc_addresses and bcc_addresses hold 501 recipients; a message takes at most 500',
    ])
  })

  test('a null column renders empty, and an inverted section (the guides’ advice) writes its stand-in; a deleted template is named', () => {
    expect(render({ name: null, email: 'a@example.com', message: 'm' }).subject).toBe(
      'Inquiry from',
    )
    const standIn = { subject: 'Inquiry from {{name}}{{^name}}a visitor{{/name}}' }
    expect(render({ name: null, email: 'a@example.com', message: 'm' }, standIn).subject).toBe(
      'Inquiry from a visitor',
    )
    expect(render({ name: 'Ada', email: 'a@example.com', message: 'm' }, standIn).subject).toBe(
      'Inquiry from Ada',
    )
    expect(() =>
      renderLease(lease({ template: 'gone', sourceRow: {} }), new Map(), 'a@example.com'),
    ).toThrow(/template "gone" no longer exists/)
  })

  test('a stored message passes through, with MAIL_FROM as the default sender', () => {
    const m = renderLease(
      lease({
        message: {
          to: [{ address: 'a@example.com' }],
          subject: 'S',
          text: 'T',
          headers: { 'X-Tag': 'v' },
          attachments: [{ filename: 'a.txt', contentBase64: 'aGVs\nbG8=' }],
        },
      }),
      new Map(),
      'outbox@example.com',
    )
    expect(m).toMatchObject({
      outboxId: '7',
      correlationId: 'c-1',
      from: { address: 'outbox@example.com' },
      text: 'T',
      html: null,
      headers: { 'X-Tag': 'v' },
      attachments: [
        { filename: 'a.txt', contentType: 'application/octet-stream', contentBase64: 'aGVsbG8=' },
      ],
    })
  })

  test('a blank body beside one that shows something is left out, stored or rendered; both blank beside a file are kept', () => {
    const bodiesOf = (message: Record<string, unknown>) => {
      const m = renderLease(
        lease({ message: { to: [{ address: 'a@example.com' }], subject: 'S', ...message } }),
        new Map(),
        'outbox@example.com',
      )
      return [m.text, m.html]
    }
    for (const [what, blank] of [...BLANK_BODIES, ['empty', ''] as const]) {
      expect([
        what,
        bodiesOf({ text: 'T', html: blank }),
        bodiesOf({ text: blank, html: '<p>H</p>' }),
      ]).toEqual([what, ['T', null], [null, '<p>H</p>']])
    }
    // Neither shows anything: the file is the mail, the bodies go as they are.
    const pdf = [{ filename: 'a.pdf', contentBase64: 'JVBERi0=' }]
    expect(bodiesOf({ text: ' ', html: '\u00a0', attachments: pdf })).toEqual([' ', '\u00a0'])
    // A template's alike: an empty column filled into its html alone.
    const m = render(
      { name: 'Ann', email: 'a@example.com', note: null },
      { text_body: 'Hi {{name}}', html_body: '{{note}} ' },
    )
    expect([m.text, m.html]).toEqual(['Hi Ann', null])
  })

  test('a correlation id stored with control characters (before 0024) is one line; nothing left, none', () => {
    const message = { to: [{ address: 'a@example.com' }], subject: 'S', text: 'T' }
    const sent = (correlationId: string) =>
      renderLease(lease({ message, correlationId }), new Map(), 'outbox@example.com').correlationId
    expect(sent('order-1\r\nReply-To: thief@example.net')).toBe(
      'order-1 Reply-To: thief@example.net',
    )
    expect(sent('\tcorr\u0001\u001b[0m\tx\u007f')).toBe('corr [0m x')
    expect(sent('\r\n\u0001')).toBeNull()
    expect(sent('c-2')).toBe('c-2')
  })

  test('MAIL_FROM may be a Graph user id (a GUID), as documented: it names the mailbox to send from', () => {
    const userId = '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b'
    const m = renderLease(
      lease({ message: { to: [{ address: 'a@example.com' }], subject: 'S', text: 'T' } }),
      new Map(),
      userId,
    )
    expect(m.from).toEqual({ address: userId })
  })

  test('no sender anywhere is a clear error', () => {
    expect(() =>
      renderLease(
        lease({ message: { to: [{ address: 'a@example.com' }], subject: 'S', text: 'T' } }),
        new Map(),
        null,
      ),
    ).toThrow(/MAIL_FROM/)
  })
})

describe('retryDelayMs', () => {
  test('doubles per attempt, is capped, and jitters within ±25 %', () => {
    const p = { baseMs: 1000, maxMs: 60_000 }
    expect(retryDelayMs(1, p, () => 0.5)).toBe(1000)
    expect(retryDelayMs(3, p, () => 0.5)).toBe(4000)
    expect(retryDelayMs(30, p, () => 0.5)).toBe(60_000)
    expect(retryDelayMs(1, p, () => 0)).toBe(750)
    expect(retryDelayMs(1, p, () => 0.999999)).toBe(1250)
  })
})
