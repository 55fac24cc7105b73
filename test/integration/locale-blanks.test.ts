// What enqueue reads as a blank (around an address string, inside base64) and what a template's from_address keys as its rows' mailbox are read alike in every database's locale and by the TypeScript that reads what it stores.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { checkEnqueuedSender } from '../../src/api/enqueued-sender.ts'
import { senderKey } from '../../src/config/allowed-senders.ts'
import { isEmailAddress } from '../../src/config/email-address.ts'
import { migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { silentLogger } from '../../src/log.ts'
import { isBlank } from '../../src/outbox/blank-body.ts'
import { countRequeueable } from '../../src/outbox/bulk-requeue.ts'
import { namedSender } from '../../src/outbox/email-address.ts'
import { RenderError } from '../../src/outbox/render-error.ts'
import { renderedAddress } from '../../src/outbox/rendered-address.ts'
import { sendableAttachments } from '../../src/outbox/stored-attachments.ts'
import { testCluster } from '../preload.ts'
import { useTestDb } from '../support/db.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()

// A database whose \s is ICU's (U+3000, U+00A0, U+0085, U+001C-U+001F and more): the test run's
// is C (\s ASCII alone), as many are not (a glibc or ICU UTF-8 locale, Postgres 17's C.UTF-8).
let admin: string
let icuName: string
let icuUrl: string
beforeAll(async () => {
  const cluster = await testCluster()
  admin = cluster.admin
  icuName = `outbox_icu_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  // ICU's, else (a TEST_DATABASE_URL server built without it) Postgres 17's builtin C.UTF-8, else
  // glibc's: each a \s wider than C's.
  const locales = [
    `locale_provider icu icu_locale 'und' locale 'C'`,
    `locale_provider builtin builtin_locale 'C.UTF-8' locale 'C'`,
    `locale_provider libc locale 'C.UTF-8'`,
  ]
  for (const [i, locale] of locales.entries()) {
    const made = await adminQuery(
      admin,
      `create database ${icuName} template template0 encoding 'UTF8' ${locale}`,
    ).then(
      () => true,
      (e: unknown) => {
        if (i === locales.length - 1) throw e
        return false
      },
    )
    if (made) break
  }
  icuUrl = cluster.url(icuName)
  await migrate({ url: icuUrl, log: silentLogger })
})
afterAll(async () => {
  await adminQuery(admin, `drop database if exists ${icuName} with (force)`)
})

/** What normalize_recipients makes of each string as `field`: the stored JSON, or its refusal's words. */
async function readBy(
  url: string,
  inputs: readonly string[],
  field = 'message.from',
): Promise<string[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`create function pg_temp.read_from(s text, field text) returns text language plpgsql as $$
      begin
        return mailer.normalize_recipients(to_jsonb(s), field)::text;
      exception when sqlstate '22023' then
        return sqlerrm;
      end $$`)
    const { rows } = await client.query<{ r: string }>(
      'select pg_temp.read_from(s, $2) as r from unnest($1::text[]) with ordinality u(s, i) order by i',
      [inputs, field],
    )
    return rows.map((r) => r.r)
  } finally {
    await client.end()
  }
}

/**
 * The TypeScript's reading of a sender (enqueued-sender.ts): the address stored, or null. The
 * worker (stored-recipients.ts) reads a string a row inserted directly holds with namedAddress, the
 * blanks of to, cc and bcc around it: a sender an older release stored so is sent as before.
 */
function readByTs(s: string): { address: string; name?: string } | null {
  const bare = s.replace(/^ +| +$/g, '')
  return isEmailAddress(bare) ? { address: bare } : namedSender(s)
}

// Every blank (blank-body.ts) and three that are not: a control character ICU's \s holds, a
// letter that looks blank, and U+180E (no longer a space).
const BLANKS = Array.from({ length: 0xffff }, (_, i) => String.fromCharCode(i + 1)).filter(
  (c) => (c < '\ud800' || c > '\udfff') && isBlank(c),
)
const CHARACTERS = [...BLANKS, '\u001c', '\u3164', '\u180e']
const SHAPES = [
  (b: string) => `Ann <ann@example.com>${b}`,
  (b: string) => `${b}"Ann" <ann@example.com>`,
  (b: string) => `"Ann"${b}<ann@example.com>`,
  (b: string) => `Ann${b}<ann@example.com>`,
  (b: string) => `ann@example.com${b}`,
  (b: string) => `ann@example.com,${b}Bob <bob@example.com>;${b}`,
  (b: string) => `ann@example.com${b}Bob <bob@example.com>`,
]
const INPUTS = SHAPES.flatMap((shape) => CHARACTERS.map(shape))
const codePoint = (c: string) => `U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`
/** Input i named by its shape and character, for a readable diff. */
const named = (i: number) =>
  `shape ${Math.floor(i / CHARACTERS.length)}, ${codePoint(CHARACTERS[i % CHARACTERS.length]!)}`

test('normalize_recipients, normalize_message and the sender key spell their blanks out: no \\s, which is the database locale’s', async () => {
  // The sender key (0188): the mailbox a pause holds a row back for and a senders claim names.
  const { rows } = await t.pool.query<{ f: string; src: string }>(
    `select p.oid::regprocedure::text as f, prosrc as src from pg_proc p
      where p.oid in ('mailer.normalize_recipients(jsonb, text)'::regprocedure,
                      'mailer.normalize_message(jsonb, boolean)'::regprocedure,
                      'mailer.address_key(text)'::regprocedure,
                      'mailer.row_sender_key(jsonb, text)'::regprocedure)
      order by 1`,
  )
  expect(rows.map((r) => [r.f, /\\[sS]|\[:space:\]/.exec(r.src)?.[0] ?? null])).toEqual([
    ['mailer.address_key(text)', null],
    ['mailer.normalize_message(jsonb,boolean)', null],
    ['mailer.normalize_recipients(jsonb,text)', null],
    ['mailer.row_sender_key(jsonb,text)', null],
  ])
})

test('an address string is read alike in a C and an ICU database, and as the TypeScript reads it', async () => {
  const [inC, inIcu] = await Promise.all([readBy(t.url, INPUTS), readBy(icuUrl, INPUTS)])
  const differ = INPUTS.flatMap((_s, i) =>
    inC[i] === inIcu[i] ? [] : [`${named(i)}: C ${inC[i]} | ICU ${inIcu[i]}`],
  )
  expect(differ).toEqual([])
  // What SQL stores as the sender the API's check reads and asks about (else a token's senders
  // claim, which no worker asks again, is passed by a blank the check does not read), and the
  // worker takes at send what SQL takes, as SQL stores it.
  const principal = {
    subject: 's',
    scopes: new Set<string>(),
    tenant: null,
    database: null,
    senders: new Set(['other@example.com']),
  }
  const disagree = INPUTS.flatMap((s, i) => {
    const stored = inC[i]!.startsWith('[') ? JSON.parse(inC[i]!)[0] : null
    let checked = false
    try {
      checkEnqueuedSender({ from: s }, null, principal as never)
    } catch {
      checked = true
    }
    const ts = readByTs(s)
    // One SQL refuses may be refused by the check too (403 before 400): it reads a bare address
    // trimmed as JavaScript trims; nothing is stored either way.
    return (checked || stored === null) && Bun.deepEquals(ts, stored)
      ? []
      : [`${named(i)}: SQL ${inC[i]} | TS ${JSON.stringify(ts)}, sender checked ${checked}`]
  })
  expect(disagree).toEqual([])
})

/**
 * The sender the release before (33b2cf3e) reads to hold it to MAIL_FROM_ALLOWED and a token's
 * senders claim (its api/enqueued-sender.ts and outbox/email-address.ts, as they were): "Name
 * <address>" with ASCII blanks around it, else the string trimmed; null asks neither list.
 */
function readByAnOlderApi(s: string): string | null {
  const m = /^[\t\n\v\f\r ]*(?:"([^"]*)"|([^"<>@,;]*))[\t\n\v\f\r ]*<([^<>]*)>[\t\n\v\f\r ]*$/.exec(
    s,
  )
  const named = m ? m[3]!.replace(/^ +| +$/g, '') : null
  const address = (named !== null && isEmailAddress(named) ? named : s).trim()
  return isEmailAddress(address) ? address : null
}

test("the release before's API check reads the sender SQL stores, so a token's senders claim holds during a deploy or after a rollback", async () => {
  // A machine of that release serves the API beside this schema while a deploy replaces it (and
  // after a rollback): a sender it reads as none it checks against neither list, and no worker
  // asks the senders claim again.
  const inC = await readBy(t.url, INPUTS)
  const passed = INPUTS.flatMap((s, i) => {
    const stored = inC[i]!.startsWith('[') ? (JSON.parse(inC[i]!)[0].address as string) : null
    return stored === null || readByAnOlderApi(s) === stored
      ? []
      : [`${named(i)}: stored ${stored}, the older check reads ${readByAnOlderApi(s)}`]
  })
  expect(passed).toEqual([])
})

test('a blank around "Name <address>" is dropped (a sender\'s after the > or around a quoted name ASCII\'s alone, 0194); a list or a name holding an address is told so, whatever the blank', async () => {
  const [inC, asTo] = await Promise.all([
    readBy(t.url, INPUTS),
    readBy(t.url, INPUTS, 'message.to'),
  ])
  const of = (shape: number, c: string) => inC[shape * CHARACTERS.length + CHARACTERS.indexOf(c)]
  const ofTo = (shape: number, c: string) => asTo[shape * CHARACTERS.length + CHARACTERS.indexOf(c)]
  const ann = '[{"name": "Ann", "address": "ann@example.com"}]'
  const notASender =
    'mailer: message.from is not a valid e-mail address: a sender written "Name <address>" takes no blank but spaces, tabs and line breaks after its > and around a quoted name (not a no-break, ideographic or zero-width space)'
  for (const b of BLANKS) {
    const sender = /^[\t\n\v\f\r ]$/.test(b) ? ann : notASender
    expect([codePoint(b), of(0, b), of(1, b), of(2, b)]).toEqual([
      codePoint(b),
      sender,
      sender,
      sender,
    ])
    // A recipient, which no list is asked about, takes every blank there.
    expect([codePoint(b), ofTo(0, b), ofTo(1, b), ofTo(2, b)]).toEqual([
      codePoint(b),
      ann,
      ann,
      ann,
    ])
    // Between an unquoted name and its <, as an earlier release's check reads it: the name's.
    expect(of(3, b)).toStartWith('[{"name": "Ann')
    expect([codePoint(b), of(5, b), of(6, b)]).toEqual([
      codePoint(b),
      'mailer: message.from is not a valid e-mail address: it holds 2 addresses separated by , or ;: from is one address, the sender (to, cc and bcc take a JSON list)',
      'mailer: message.from is not a valid e-mail address: it holds 2 addresses, 1 in its display name: from is one address, the sender (to, cc and bcc take a JSON list); a display name meant to show an address goes in double quotes',
    ])
  }
  // A control character is no blank: refused after the address, as in the address itself.
  expect(of(0, '\u001c')).toBe('mailer: message.from is not a valid e-mail address')
})

test('base64 is read alike in a C and an ICU database, and as the worker reads it at send', async () => {
  // Whitespace in base64 (MIME's line breaks, a space) is ASCII's, as the worker and the API read
  // it: an ICU database's \s took a no-break space there, stored a row the worker then failed.
  const contents = [
    'QQ==',
    'QQ\r\n==',
    ' Q Q== ',
    'QUJD\tREVG\n',
    ...CHARACTERS.map((c) => `QUJD${c}REVG`),
    ...CHARACTERS.map((c) => `QQ==${c}`),
  ]
  const verdicts = async (url: string) => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const out: string[] = []
      for (const contentBase64 of contents) {
        out.push(
          await client
            .query(
              `select jsonb_typeof(mailer.normalize_message($1::jsonb, true) -> 'attachments') as r`,
              [
                JSON.stringify({
                  to: 'a@example.com',
                  subject: 's',
                  text: 't',
                  attachments: [{ filename: 'a.bin', contentBase64 }],
                }),
              ],
            )
            .then(
              () => 'taken',
              (e: Error) => e.message,
            ),
        )
      }
      return out
    } finally {
      await client.end()
    }
  }
  const [inC, inIcu] = await Promise.all([verdicts(t.url), verdicts(icuUrl)])
  const atSend = contents.map((contentBase64) => {
    try {
      sendableAttachments([{ filename: 'a.bin', contentBase64 }])
      return 'taken'
    } catch (e) {
      return e instanceof RenderError ? 'refused' : String(e)
    }
  })
  const differ = contents.flatMap((c, i) =>
    inC[i] === inIcu[i] && (inC[i] === 'taken') === (atSend[i] === 'taken')
      ? []
      : [`${JSON.stringify(c)}: C ${inC[i]} | ICU ${inIcu[i]} | at send ${atSend[i]}`],
  )
  expect(differ).toEqual([])
  expect(inC.slice(0, 4)).toEqual(['taken', 'taken', 'taken', 'taken'])
})

/**
 * The sender key (mailer.row_sender_key) a row of a template with each from_address gets, in the
 * database at `url`: null for none (MAIL_FROM's), 'refused' when the table refuses the template.
 */
async function templateKeysBy(url: string, inputs: readonly string[]): Promise<(string | null)[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('begin')
    await client.query(`create function pg_temp.key_of(s text, n bigint) returns text language plpgsql as $$
      begin
        insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
        values ('key_' || n, 'S', 'x', array['a@example.com'], s);
        return coalesce(mailer.row_sender_key(null, 'key_' || n), '(none)');
      exception when sqlstate '22023' then
        return 'refused';
      end $$`)
    const { rows } = await client.query<{ k: string }>(
      'select pg_temp.key_of(s, i) as k from unnest($1::text[]) with ordinality u(s, i) order by i',
      [inputs],
    )
    return rows.map((r) => (r.k === '(none)' ? null : r.k))
  } finally {
    await client.query('rollback').catch(() => {})
    await client.end()
  }
}

// render-template.ts's NO_ADDRESS: nothing, or a name before an empty "<>" (JavaScript's \s).
const NO_ADDRESS = /^(?:[^<>]*<\s*>)?\s*$/s

test("a template's from_address keys its rows' mailbox as the worker renders it, in a C and an ICU database", async () => {
  // The key holds a row back while its mailbox is paused and decides which rows a token confined
  // to senders may retry; the worker sends from (and pauses) the mailbox it renders.
  const shapes = [
    (b: string) => `Desk <desk@example.com>${b}`,
    (b: string) => `Desk <${b}desk@example.com>`,
    (b: string) => `Desk <desk@example.com${b}>`,
    (b: string) => `${b}desk@example.com${b}`,
    (b: string) => `Desk <${b}>${b}`,
    (b: string) => `Desk${b}<desk@example.com>`,
  ]
  const inputs = shapes.flatMap((shape) => CHARACTERS.map(shape))
  const [inC, inIcu] = await Promise.all([
    templateKeysBy(t.url, inputs),
    templateKeysBy(icuUrl, inputs),
  ])
  const name = (i: number) =>
    `shape ${Math.floor(i / CHARACTERS.length)}, ${codePoint(CHARACTERS[i % CHARACTERS.length]!)}`
  const differ = inputs.flatMap((s, i) => {
    let rendered: string | null
    if (NO_ADDRESS.test(s)) rendered = null
    else {
      try {
        rendered = senderKey(renderedAddress(s, 'from_address').address)
      } catch {
        // Fails its rows at send whatever their key; the table refuses nearly all such.
        return []
      }
    }
    return inC[i] === rendered && inIcu[i] === rendered
      ? []
      : [`${name(i)}: rendered ${rendered} | C ${inC[i]} | ICU ${inIcu[i]}`]
  })
  expect(differ).toEqual([])
  // Not all skipped: the plain one keyed.
  expect(inC[CHARACTERS.indexOf(' ')]).toBe('desk@example.com')
})

test('a token confined to the mailbox a template renders may retry its rows; rows keyed before 0188 are keyed again', async () => {
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
     values ('desk_nbsp', 's', 't', '{rcpt@example.com}', E'Desk <desk@example.com>\\u00a0'),
            ('desk_plain', 's', 't', '{rcpt@example.com}', 'Desk <desk@example.com>')`,
  )
  await t.pool.query(
    `insert into mailer.email_outbox (template, source_row, status, last_error_code)
     select t, '{}', s, case when s = 'failed' then 'x' end
       from unnest(array['desk_nbsp', 'desk_plain']) t, unnest(array['failed', 'pending', 'sent']) s`,
  )
  // Sent from desk@example.com either way (the worker renders the address, trimmed).
  const desk = new Set(['desk@example.com'])
  expect([
    await countRequeueable(t.db, { template: 'desk_nbsp' }, null, desk),
    await countRequeueable(t.db, { template: 'desk_nbsp' }, null, desk, false),
  ]).toEqual([1, 0])
  // As 0039's key left them; 0188 keys the unsent ones again, the plain template's rows untouched.
  await t.pool.query(
    `update mailer.email_outbox set sender_key = lower(from_address)
       from mailer.templates where name = template`,
  )
  await t.pool.query(migrations.find((m) => m.version === 188)!.sql)
  const { rows } = await t.pool.query<{ k: string }>(
    `select template || ' ' || status || ': ' || sender_key as k from mailer.email_outbox
      where template like 'desk_%' order by template, status`,
  )
  expect(rows.map((r) => r.k)).toEqual([
    'desk_nbsp failed: desk@example.com',
    'desk_nbsp pending: desk@example.com',
    'desk_nbsp sent: desk <desk@example.com>\u00a0',
    'desk_plain failed: desk <desk@example.com>',
    'desk_plain pending: desk <desk@example.com>',
    'desk_plain sent: desk <desk@example.com>',
  ])
})
