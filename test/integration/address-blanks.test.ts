// The blanks around an address string ("Name <address>", a list in one string) read alike by mailer.normalize_recipients in every database's locale and by the TypeScript that reads what it stores.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { checkEnqueuedSender } from '../../src/api/enqueued-sender.ts'
import { isEmailAddress } from '../../src/config/email-address.ts'
import { migrate } from '../../src/db/migrate.ts'
import { silentLogger } from '../../src/log.ts'
import { isBlank } from '../../src/outbox/blank-body.ts'
import { namedAddress } from '../../src/outbox/email-address.ts'
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
  await adminQuery(
    admin,
    `create database ${icuName} template template0 encoding 'UTF8' locale_provider icu icu_locale 'und' locale 'C'`,
  )
  icuUrl = cluster.url(icuName)
  await migrate({ url: icuUrl, log: silentLogger })
})
afterAll(async () => {
  await adminQuery(admin, `drop database if exists ${icuName} with (force)`)
})

/** What normalize_recipients makes of each string as message.from: the stored JSON, or its refusal's words. */
async function readBy(url: string, inputs: readonly string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`create function pg_temp.read_from(s text) returns text language plpgsql as $$
      begin
        return mailer.normalize_recipients(to_jsonb(s), 'message.from')::text;
      exception when sqlstate '22023' then
        return sqlerrm;
      end $$`)
    const { rows } = await client.query<{ r: string }>(
      'select pg_temp.read_from(s) as r from unnest($1::text[]) with ordinality u(s, i) order by i',
      [inputs],
    )
    return rows.map((r) => r.r)
  } finally {
    await client.end()
  }
}

/** The TypeScript's reading (stored-recipients.ts, enqueued-sender.ts): the address stored, or null. */
function readByTs(s: string): { address: string; name?: string } | null {
  const bare = s.replace(/^ +| +$/g, '')
  return isEmailAddress(bare) ? { address: bare } : namedAddress(s)
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

test('normalize_recipients spells its blanks out: no \\s, which is the database locale’s', async () => {
  const { rows } = await t.pool.query<{ src: string }>(
    `select prosrc as src from pg_proc where oid = 'mailer.normalize_recipients(jsonb, text)'::regprocedure`,
  )
  expect(rows[0]!.src).not.toMatch(/\\[sS]|\[:space:\]/)
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

test('a blank around "Name <address>" is dropped; a list or a name holding an address is told so, whatever the blank', async () => {
  const inC = await readBy(t.url, INPUTS)
  const of = (shape: number, c: string) => inC[shape * CHARACTERS.length + CHARACTERS.indexOf(c)]
  for (const b of BLANKS) {
    expect([codePoint(b), of(0, b), of(1, b), of(2, b)]).toEqual([
      codePoint(b),
      '[{"name": "Ann", "address": "ann@example.com"}]',
      '[{"name": "Ann", "address": "ann@example.com"}]',
      '[{"name": "Ann", "address": "ann@example.com"}]',
    ])
    expect([codePoint(b), of(5, b), of(6, b)]).toEqual([
      codePoint(b),
      'mailer: message.from is not a valid e-mail address: it holds 2 addresses separated by , or ;: from is one address, the sender (to, cc and bcc take a JSON list)',
      'mailer: message.from is not a valid e-mail address: it holds 2 addresses, 1 in its display name: from is one address, the sender (to, cc and bcc take a JSON list); a display name meant to show an address goes in double quotes',
    ])
  }
  // A control character is no blank: refused after the address, as in the address itself.
  expect(of(0, '\u001c')).toBe('mailer: message.from is not a valid e-mail address')
})
