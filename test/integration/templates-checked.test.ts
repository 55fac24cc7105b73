// A template that makes every mail it renders fail is refused where it is written (sql/0031); what a row's columns decide is left to the send.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Mustache from 'mustache'
import pg from 'pg'
import type { TemplateRow } from '../../src/db/schema.ts'
import { isBlank } from '../../src/outbox/blank-body.ts'
import { rendersBlankForEveryRow } from '../../src/outbox/blank-template-body.ts'
import type { Lease } from '../../src/outbox/claim.ts'
import { renderLease } from '../../src/outbox/render.ts'
import { RenderError } from '../../src/outbox/render-error.ts'
import { fill } from '../../src/outbox/template-fill.ts'
import { ROOT } from '../deploy/deploy-files.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

type Fields = Partial<Omit<TemplateRow, 'name' | 'created_at' | 'updated_at'>>
const base = {
  subject: 'Hello {{name}}',
  text_body: 'Hi {{name}}',
  html_body: null,
  to_addresses: ['sales@example.com'],
  cc_addresses: [],
  bcc_addresses: [],
  reply_to: null,
  from_address: null,
} satisfies Fields

/** Inserts template `t` with `fields` over the base; null when stored, else the refusal. */
async function written(fields: Fields) {
  const f = { ...base, ...fields }
  return t.pool
    .query(
      `insert into mailer.templates (name, subject, text_body, html_body, to_addresses, cc_addresses, bcc_addresses, reply_to, from_address)
       values ('t', $1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        f.subject,
        f.text_body,
        f.html_body,
        f.to_addresses,
        f.cc_addresses,
        f.bcc_addresses,
        f.reply_to,
        f.from_address,
      ],
    )
    .then(
      () => null,
      (e: { code?: string; message: string }) => ({ code: e.code, message: e.message }),
    )
}

// A row with every column the templates below name, each an address and text at once.
const ROW = { name: 'Ada', email: 'ada@example.com', items: [{ x: 1 }], a: true, b: true }

/** What rendering the template does for ROW: null when it renders, else its code. */
function rendered(fields: Fields): string | null {
  const template = {
    ...base,
    ...fields,
    name: 't',
    created_at: new Date(),
    updated_at: new Date(),
  } as TemplateRow
  const lease: Lease = {
    id: '1',
    token: 't',
    tenant: 'default',
    attempt: 1,
    correlationId: null,
    message: null,
    template: 't',
    sourceRow: ROW,
    expired: false,
    cancelRequested: false,
    ambiguous: false,
    started: false,
  }
  try {
    renderLease(lease, new Map([['t', template]]), 'outbox@example.com')
    return null
  } catch (e) {
    return e instanceof RenderError ? e.code : String(e)
  }
}

const many = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.com`)
const refusedAs = (field: string, problem: string) => ({
  code: '22023',
  message: `mailer: ${field} ${problem}`,
})
const NO_BODY =
  'is empty or blanks only and has no placeholder: every mail of the template would fail (a mail without a body is not sent)'
const RENDERS_BLANK =
  'has no placeholder and no text but blanks outside its tags (comments, partials and sections holding neither): every mail of the template would render it blank and fail (a mail without a body is not sent)'
const NOT_AN_ADDRESS =
  'is not an e-mail address ("Name <address>" or an address) and has no placeholder: every mail of the template would fail'

describe('refused, naming the field, because every mail of the template would fail', () => {
  const cases: [string, Fields, ReturnType<typeof refusedAs>][] = [
    ['from_address', { from_address: 'noreply' }, refusedAs('from_address', NOT_AN_ADDRESS)],
    [
      'a named from_address',
      { from_address: 'Shop <shop@example>' },
      refusedAs('from_address', NOT_AN_ADDRESS),
    ],
    ['reply_to', { reply_to: 'reply at example.com' }, refusedAs('reply_to', NOT_AN_ADDRESS)],
    [
      'to_addresses',
      { to_addresses: ['{{email}}', 'sales@example.com', 'sales'] },
      refusedAs('to_addresses[2]', NOT_AN_ADDRESS),
    ],
    [
      'cc_addresses',
      { cc_addresses: ['a@b@example.com'] },
      refusedAs('cc_addresses[0]', NOT_AN_ADDRESS),
    ],
    ['bcc_addresses', { bcc_addresses: ['<>x'] }, refusedAs('bcc_addresses[0]', NOT_AN_ADDRESS)],
    // Taken before 0043; the file transport wrote "sales\u0001@…" as "sales@…" and
    // "ana\u00a0maria@…" as "ana <maria@…>", another address than the template's.
    [
      'an address holding a control character',
      { to_addresses: ['sales\u0001@example.com'] },
      refusedAs('to_addresses[0]', NOT_AN_ADDRESS),
    ],
    [
      'an address holding a blank other than ASCII whitespace',
      { reply_to: 'Help <ana\u00a0maria@example.com>' },
      refusedAs('reply_to', NOT_AN_ADDRESS),
    ],
    [
      'more than 500 recipients',
      { to_addresses: many(300), cc_addresses: many(150), bcc_addresses: many(51) },
      refusedAs(
        'to_addresses',
        'has 501 entries with cc_addresses and bcc_addresses; a message takes at most 500 recipients',
      ),
    ],
    [
      'no recipient',
      { to_addresses: ['', 'Sales <>'], cc_addresses: [' '] },
      refusedAs(
        'to_addresses',
        'is required: each entry of to_addresses, cc_addresses and bcc_addresses is empty and has no placeholder',
      ),
    ],
    [
      'a subject of blanks and line breaks',
      { subject: '\t\r\n\u00a0' },
      refusedAs('subject', 'is empty once trimmed and its control characters folded'),
    ],
    [
      'a text_body of blanks only and no html_body',
      { text_body: ' \r\n\t' },
      refusedAs('text_body', NO_BODY),
    ],
    [
      'an html_body of blanks only and no text_body',
      { text_body: null, html_body: '\u00a0\u3000' },
      refusedAs('html_body', NO_BODY),
    ],
    [
      'both bodies empty or blanks only, none with a placeholder',
      { text_body: '', html_body: '\u200b\ufeff\n' },
      refusedAs(
        'text_body',
        'is empty or blanks only, as is html_body, and neither has a placeholder: every mail of the template would fail (a mail without a body is not sent)',
      ),
    ],
    [
      'a text_body of a comment alone',
      { text_body: '{{! a note for whoever edits this }}' },
      refusedAs('text_body', RENDERS_BLANK),
    ],
    [
      'a text_body of sections holding nothing, a partial and comments',
      { text_body: ' {{#items}}\n{{/items}}{{^a}}\u00a0{{/a}}{{> footer}}{{ ! x }}\n' },
      refusedAs('text_body', RENDERS_BLANK),
    ],
    [
      'an html_body of a comment beside a blank text_body',
      { text_body: ' ', html_body: '{{!<p>Hi</p>}}' },
      refusedAs(
        'text_body',
        'has no placeholder and no text but blanks outside its tags (comments, partials and sections holding neither), nor has html_body: every mail of the template would render them blank and fail (a mail without a body is not sent)',
      ),
    ],
    [
      'an unclosed tag',
      { subject: 'Hello {{name' },
      refusedAs('subject', 'has a {{ with no }} after it'),
    ],
    [
      'an unclosed triple mustache',
      { html_body: '<p>{{{name}}</p>' },
      refusedAs('html_body', 'has a {{{ with no }}} after it'),
    ],
    [
      'a section never closed',
      { text_body: '{{#items}}{{x}}' },
      refusedAs('text_body', 'leaves section "items" open (no {{/items}})'),
    ],
    [
      'a section closed that is not open',
      { text_body: 'Hi {{/items}}' },
      refusedAs('text_body', 'closes section "items", which is not open'),
    ],
    [
      'sections closed out of order',
      { text_body: '{{#a}}{{^b}}{{/a}}{{/b}}' },
      refusedAs('text_body', 'closes section "a" while section "b" is open'),
    ],
    [
      'an address field mustache cannot parse',
      { to_addresses: ['{{#email}}x@example.com'] },
      refusedAs('to_addresses[0]', 'leaves section "email" open (no {{/email}})'),
    ],
  ]
  for (const [name, fields, refusal] of cases) {
    test(`${name}: renders to a template_error for any row, and is refused`, async () => {
      expect(rendered(fields)).toBe('template_error')
      expect(await written(fields)).toEqual(refusal)
      const n = await t.pool.query('select count(*)::int as n from mailer.templates')
      expect(n.rows[0].n).toBe(0)
    })
  }

  test('an update that makes the template fail every mail is refused, and the template kept', async () => {
    expect(await written({})).toBeNull()
    const e = await t.pool
      .query(`update mailer.templates set from_address = 'noreply' where name = 't'`)
      .then(
        () => null,
        (x: { code?: string; message: string }) => x.message,
      )
    expect(e).toBe(`mailer: from_address ${NOT_AN_ADDRESS}`)
    const kept = await t.pool.query(`select from_address from mailer.templates where name = 't'`)
    expect(kept.rows).toEqual([{ from_address: null }])
  })
})

describe('taken: what a row may still render into a mail', () => {
  const cases: [string, Fields][] = [
    [
      'addresses a column fills',
      { from_address: 'Team {{name}} <{{email}}>', reply_to: '{{email}}' },
    ],
    ['an address that is one only once filled', { to_addresses: ['{{name}}@example.com'] }],
    [
      'a literal address, trimmed or named',
      { from_address: ' Shop <shop@example.com> ', reply_to: '\tr@example.com\u00a0' },
    ],
    [
      'empty addresses, left out',
      { from_address: '', reply_to: 'Desk <>', cc_addresses: ['', ' '] },
    ],
    ['exactly 500 recipients', { to_addresses: many(300), cc_addresses: many(200) }],
    ['one recipient among empty ones', { to_addresses: ['', '{{email}}'], cc_addresses: [''] }],
    ['a subject only a column fills', { subject: ' {{name}} ' }],
    ['a subject with a line break in it', { subject: 'Hello\r\nworld' }],
    [
      'sections, inverted ones and blanks in tags',
      { text_body: '{{# items }}{{x}}{{/ items}}{{^a}}none{{/a}}' },
    ],
    ['triple mustaches and ampersands', { html_body: '{{{name}}} {{& name}} {{ {name}}}' }],
    ['a comment holding what would be a section', { text_body: '{{! {{#items}} }}Hi' }],
    ['text inside a section alone', { text_body: '{{! note }}{{#a}}Hi{{/a}}' }],
    [
      'text inside sections alone, inverted too',
      { text_body: '{{^a}}x{{/a}}{{! note }}{{#b}}y{{/b}}' },
    ],
    ['a placeholder inside a section alone', { text_body: '{{#a}} {{name}} {{/a}}' }],
    ['text after a comment', { html_body: '{{! note }}<p>', text_body: null }],
    ['braces that open no tag', { text_body: 'a { b } }} c' }],
    ['delimiters changed, not followed by the check', { text_body: '{{=<% %>=}}<%name%> {{/x}}' }],
    // One body that shows something (or may, once filled) is the mail; markup is a body.
    ['a blank text_body beside an html_body', { text_body: ' \n', html_body: '<p>Hi</p>' }],
    [
      'a blank html_body beside a text_body a column fills',
      { text_body: '{{name}}', html_body: '\u00a0' },
    ],
    ['an html_body of markup alone', { text_body: null, html_body: '<p> </p>' }],
  ]
  for (const [name, fields] of cases) {
    test(`${name}: renders for a row, and is stored`, async () => {
      for (const f of ['subject', 'text_body', 'html_body'] as const) {
        const tpl = fields[f]
        if (typeof tpl === 'string') expect(() => Mustache.parse(tpl)).not.toThrow()
      }
      expect(rendered(fields)).toBeNull()
      expect(await written(fields)).toBeNull()
    })
  }

  test('tags that hold what would close a section or open a tag: mustache parses them, so they are stored', async () => {
    // Names such as `name}}{{/x` or `a{{b` are columns no row has: each mail fails, as for any
    // placeholder naming a missing column.
    for (const html_body of [
      '{{{name}}{{/x}}}',
      '{{#a{{b}}x{{/a{{b}}',
      '{{{{name}}}',
      '{{ {{name}}}',
    ]) {
      expect(() => Mustache.parse(html_body)).not.toThrow()
      expect([html_body, await written({ html_body })]).toEqual([html_body, null])
      await t.reset()
    }
  })

  test('a tag left open across another {{ is refused as mustache refuses it', async () => {
    for (const [text_body, problem] of [
      ['{{ {{#a}}', 'has a {{{ with no }}} after it'],
      ['{{#a {{b}} x', 'leaves section "a {{b" open (no {{/a {{b}})'],
      ['{{a {{b', 'has a {{ with no }} after it'],
    ]) {
      expect(() => Mustache.parse(text_body!)).toThrow()
      expect(await written({ text_body })).toEqual(refusedAs('text_body', problem!))
    }
  })
})

describe('a body that renders blank for every row (0177), read in SQL as mustache.js parses it', () => {
  // The renderer's own parse (blank-template-body.ts, Mustache.parse's tokens) is the reference.
  const FRAGMENTS = [
    '',
    ' ',
    '\u3000\n',
    'x',
    '{{! c }}',
    '{{!x}}}',
    '{{#a}}',
    '{{/a}}',
    '{{^ a }}',
    '{{> p}}',
    '{{name}}',
    '{{{name}}}',
    '{{& name}}',
    '{{ {name}}}',
    '{{=<% %>=}}',
    '}}',
    '{',
  ]

  test('agrees with the renderer on every body of up to three fragments mustache parses', async () => {
    const bodies: string[] = []
    for (const a of FRAGMENTS)
      for (const b of FRAGMENTS) for (const c of FRAGMENTS) bodies.push(a + b + c)
    const parsed = [...new Set(bodies)].flatMap((body) => {
      try {
        Mustache.parse(body)
        return [{ body, blank: rendersBlankForEveryRow(body) }]
      } catch {
        return []
      }
    })
    const { rows } = await t.pool.query<{ body: string; blank: boolean }>(
      'select b as body, mailer.template_body_renders_blank(b) as blank from unnest($1::text[]) b',
      [parsed.map((p) => p.body)],
    )
    expect(rows.filter((r, i) => r.blank !== parsed[i]!.blank)).toEqual([])
    // Both verdicts are met.
    expect(new Set(rows.map((r) => r.blank))).toEqual(new Set([true, false]))
    // What both call blank renders so, the section open or not.
    const shown = parsed
      .filter((p) => p.blank)
      .flatMap((p) =>
        [true, false].map((a) => fill('text_body', p.body, { a, name: 'Ada' }, false)),
      )
      .filter((text) => !isBlank(text))
    expect(shown).toEqual([])
  })
})

describe('templates stored before 0031', () => {
  /** The deploy guide's check (step 6) that lists the stored templates 0031 would refuse. */
  function documentedCheck(): string {
    const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
    const block = /Templates stored before 0031[\s\S]*?```sql\n([\s\S]*?)```/.exec(guide)?.[1]
    if (!block)
      throw new Error('deploy/README.md step 6 has no check of templates stored before 0031')
    return block
  }

  test("the deploy guide's check names each one with 0031's (or 0177's) reason, and changes nothing", async () => {
    // Stored as a release before 0031 stored them: its check off.
    const c = await t.pool.connect()
    try {
      await c.query('begin')
      await c.query('alter table mailer.templates disable trigger templates_checked')
      for (const [name, subject, from, text] of [
        ['a-fine', 'Hello {{name}}', null, 'Hi'],
        ['b-open-tag', 'Hello {{name', null, 'Hi'],
        ['c-bad-sender', 'Hello', 'not an address', 'Hi'],
        // Refused since 0177: blank, every mail of it fails (template_error), unsent.
        ['d-no-body', 'Hello', null, ' \n'],
        // Refused since 0177: a comment alone renders blank for every row too.
        ['e-comment-body', 'Hello', null, '{{! write the body }}'],
      ]) {
        await c.query(
          `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
           values ($1, $2, $4, '{sales@example.com}', $3)`,
          [name, subject, from, text],
        )
      }
      await c.query('alter table mailer.templates enable trigger templates_checked')
      await c.query('commit')
    } finally {
      c.release()
    }
    const before = await t.pool.query(
      'select name, xmin::text, subject from mailer.templates order by name',
    )
    const notices: string[] = []
    const client = new pg.Client({ connectionString: t.url })
    await client.connect()
    try {
      client.on('notice', (n) => notices.push(n.message ?? ''))
      await client.query(documentedCheck())
    } finally {
      await client.end()
    }
    expect(notices).toEqual([
      expect.stringMatching(
        /^template b-open-tag: mailer: subject has a \{\{ with no \}\} after it$/,
      ),
      expect.stringMatching(
        /^template c-bad-sender: mailer: from_address is not an e-mail address/,
      ),
      `template d-no-body: mailer: text_body ${NO_BODY}`,
      `template e-comment-body: mailer: text_body ${RENDERS_BLANK}`,
    ])
    // Rolled back: not one template rewritten.
    const after = await t.pool.query(
      'select name, xmin::text, subject from mailer.templates order by name',
    )
    expect(after.rows).toEqual(before.rows)
  })
})
