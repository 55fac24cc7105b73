// The file transport: the RFC 5322 message it composes and the one file it writes per outbox id.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { OutboundMail } from '../../src/outbox/sender.ts'
import { composeEml, createFileSender } from '../../src/transport/file-sender.ts'
import { buildSendMailBody, MAX_REQUEST_BYTES } from '../../src/transport/graph-message.ts'
import { decodeWords } from '../support/eml-reader.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). Composing the
// 4 MB mails below is seconds of CPU on a loaded machine (3.9 s in CI, beside the Postgres 17 run).
setDefaultTimeout(30_000)

const mail: OutboundMail = {
  outboxId: '42',
  tenant: 'default',
  attempt: 1,
  correlationId: 'corr-9',
  from: { address: 'outbox@example.com', name: 'Outbox' },
  to: [{ address: 'a@example.com' }],
  cc: [],
  bcc: [{ address: 'audit@example.com' }],
  replyTo: [],
  subject: 'Grüße',
  text: 'plain body',
  html: '<p>html body</p>',
  importance: null,
  headers: { 'X-Tag': 'demo' },
  attachments: [
    {
      filename: 'hello.txt',
      contentType: 'text/plain',
      contentBase64: Buffer.from('hello').toString('base64'),
    },
  ],
}

const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

test('composes an RFC 5322 message: multipart/alternative inside mixed, our headers, encoded subject', async () => {
  const eml = (await composeEml(mail)).toString('utf8')
  expect(eml).toMatch(/^X-Outbox-Id: 42$/im)
  expect(eml).toMatch(/^X-Correlation-Id: corr-9$/im)
  expect(eml).toMatch(/^X-Tag: demo$/im)
  expect(eml).toMatch(/^Subject: =\?UTF-8\?/m)
  expect(eml).toMatch(/^Bcc: audit@example.com$/m)
  expect(eml).toContain('multipart/mixed')
  expect(eml).toContain('multipart/alternative')
  expect(eml).toContain('filename=hello.txt')
  expect(eml).toContain(Buffer.from('hello').toString('base64'))
})

test('header names are written as spelled, X-Outbox-Id as the contract names it, not recased', async () => {
  const eml = (
    await composeEml({ ...mail, headers: { 'X-Request-Id': 'r-1', 'x-lower-md5': 'v' } })
  ).toString('utf8')
  // Case-sensitive on purpose: `grep '^X-Outbox-Id:'` over ./mail-out must find every message.
  expect(eml).toMatch(/^X-Outbox-Id: 42$/m)
  expect(eml).toMatch(/^X-Correlation-Id: corr-9$/m)
  expect(eml).toMatch(/^X-Request-Id: r-1$/m)
  expect(eml).toMatch(/^x-lower-md5: v$/m)
  // Headers of nodemailer's own stay as it writes them.
  expect(eml).toMatch(/^MIME-Version: 1\.0$/m)
  expect(eml).toMatch(/^Message-ID: <outbox-42@outbox-mailer\.invalid>$/m)
})

test('of headers named alike but for case, the first alone is written, as Graph sends it', async () => {
  // enqueue takes both (jsonb keeps "X-Tag" and "x-tag" apart); Graph's request carries the first
  // alone (graph-message.ts), and the .eml wrote both, each under the name spelled last.
  const headers = { 'X-Tag': 'first', 'x-tag': 'second', 'X-TAG': 'third', 'X-Other': 'o' }
  const eml = (await composeEml({ ...mail, headers })).toString('utf8')
  const written = eml
    .slice(0, eml.indexOf('\r\n\r\n'))
    .split('\r\n')
    .filter((l) => /^x-(tag|other):/i.test(l))
  const sent = buildSendMailBody({ ...mail, headers }, { saveToSentItems: false }).message
    .internetMessageHeaders as { name: string; value: string }[]
  expect(written).toEqual(
    sent.filter((h) => /^x-(tag|other)$/i.test(h.name)).map((h) => `${h.name}: ${h.value}`),
  )
  expect(written).toEqual(['X-Tag: first', 'X-Other: o'])
})

test('line and paragraph separators and bidi overrides reach the .eml encoded, each value as given; no header is added', async () => {
  // U+2028 is a line break to some readers, U+202E turns "invoice<RLO>fdp.exe" into
  // "invoiceexe.pdf" on screen: nodemailer encodes both (RFC 2047, RFC 2231), Graph's request
  // carries them as JSON strings. Held since the first file transport; pinned here.
  const evil = 'Bcc: x@evil.example'
  const m: OutboundMail = {
    ...mail,
    to: [{ address: 'a@example.com', name: 'Ada\u2029\u202eecilA' }],
    bcc: [],
    replyTo: [{ address: 'r@example.com', name: `R\u2028${evil}` }],
    subject: `Invoice\u2028${evil}`,
    headers: { 'X-Tag': `v\u2028${evil}` },
    attachments: [
      { filename: 'invoice\u202efdp.exe', contentType: 'application/pdf', contentBase64: 'QQ==' },
    ],
  }
  const eml = (await composeEml(m)).toString('utf8')
  const head = eml.slice(0, eml.indexOf('\r\n\r\n'))
  // Every header of the message on its own line, continuations folded back.
  const fields = new Map(
    head
      .replace(/\r\n[ \t]/g, ' ')
      .split('\r\n')
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)] as const),
  )
  expect([...fields.keys()].filter((k) => /^bcc$/i.test(k))).toEqual([])
  expect(/[\u2028\u2029\u202e]/.test(eml)).toBe(false)
  expect(decodeWords(fields.get('Subject')!)).toBe(m.subject)
  expect(decodeWords(fields.get('X-Tag')!)).toBe(`v\u2028${evil}`)
  expect(decodeWords(fields.get('To')!)).toBe(`${m.to[0]!.name} <a@example.com>`)
  expect(decodeWords(fields.get('Reply-To')!)).toBe(`${m.replyTo[0]!.name} <r@example.com>`)
  const filename = /filename\*0\*=utf-8''(\S+)/.exec(eml)?.[1]
  expect(decodeURIComponent(filename ?? '')).toBe(m.attachments[0]!.filename)
  const request = buildSendMailBody(m, { saveToSentItems: false }).message
  expect(request).toMatchObject({
    subject: m.subject,
    toRecipients: [{ emailAddress: { name: m.to[0]!.name } }],
    replyTo: [{ emailAddress: { name: m.replyTo[0]!.name } }],
    attachments: [{ name: m.attachments[0]!.filename }],
  })
})

test('a text-only message is a single text/plain part holding exactly the text', async () => {
  const eml = (
    await composeEml({ ...mail, html: null, attachments: [], text: 'just text' })
  ).toString('utf8')
  expect(eml).not.toContain('multipart')
  expect(eml).toMatch(/Content-Type: text\/plain; charset=utf-8/)
  expect(eml.trimEnd().endsWith('just text')).toBe(true)
})

test('importance high or low is written as the headers mail clients read; normal adds none', async () => {
  const high = (await composeEml({ ...mail, importance: 'high' })).toString('utf8')
  expect(high).toMatch(/^Importance: High$/m)
  expect(high).toMatch(/^X-Priority: 1 \(Highest\)$/m)
  const low = (await composeEml({ ...mail, importance: 'low' })).toString('utf8')
  expect(low).toMatch(/^Importance: Low$/m)
  expect(low).toMatch(/^X-Priority: 5 \(Lowest\)$/m)
  const normal = (await composeEml({ ...mail, importance: 'normal' })).toString('utf8')
  expect(normal).not.toMatch(/^(Importance|X-Priority):/im)
})

test('writes one file per outbox id; a repeat overwrites instead of duplicating', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-file-'))
  dirs.push(dir)
  const sender = createFileSender(join(dir, 'nested'))
  const signal = new AbortController().signal
  expect(await sender.send(mail, signal)).toEqual({ kind: 'sent' })
  expect(await sender.send({ ...mail, attempt: 2 }, signal)).toEqual({ kind: 'sent' })
  expect(await readdir(join(dir, 'nested'))).toEqual(['outbox-42.eml'])
  expect((await readFile(join(dir, 'nested', 'outbox-42.eml'), 'utf8')).length).toBeGreaterThan(100)
})

test('a directory it could not make is made again at the next message, once the cause is gone', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-file-'))
  dirs.push(dir)
  // A file where the directory's parent should be: mkdir fails (ENOTDIR) until it is removed.
  await writeFile(join(dir, 'out'), 'in the way')
  const sender = createFileSender(join(dir, 'out', 'mail'))
  const signal = new AbortController().signal
  expect(await sender.send(mail, signal)).toMatchObject({
    kind: 'retry',
    code: 'file_write_failed',
  })
  await rm(join(dir, 'out'))
  expect(await sender.send(mail, signal)).toEqual({ kind: 'sent' })
  expect(await readdir(join(dir, 'out', 'mail'))).toEqual(['outbox-42.eml'])
})

test('a mail Graph would refuse as too large is refused as Graph refuses it, and no file is written', async () => {
  // Development on the file transport wrote such a mail, which in production failed at once:
  // a template whose rendered body grows past 4 MB, a row stored directly, one close to the limit.
  const dir = await mkdtemp(join(tmpdir(), 'outbox-file-large-'))
  dirs.push(dir)
  const sender = createFileSender(dir)
  const signal = new AbortController().signal
  const big = { ...mail, attachments: [], html: null, text: 'x'.repeat(4 * 1024 * 1024) }
  expect(await sender.send(big, signal)).toMatchObject({
    kind: 'reject',
    code: 'message_too_large',
  })
  const attached = {
    ...mail,
    attachments: [
      {
        filename: 'big.bin',
        contentType: 'application/octet-stream',
        contentBase64: Buffer.alloc(3 * 1024 * 1024 + 1).toString('base64'),
      },
    ],
  }
  expect(await sender.send(attached, signal)).toMatchObject({
    kind: 'reject',
    code: 'attachment_too_large',
  })
  expect(await readdir(dir)).toEqual([])
  // Just under the limit it is written.
  const fits = { ...big, text: 'x'.repeat(4 * 1024 * 1024 - 2_000) }
  expect(await sender.send(fits, signal)).toEqual({ kind: 'sent' })
  expect(await readdir(dir)).toEqual(['outbox-42.eml'])
})

test('a mail that fits only without the database tags Graph adds is refused as Graph refuses it', async () => {
  // Graph's request also carries OutboxDatabase and OutboxDatabaseId (up to a 40-character name
  // and a uuid): a mail checked without them fits in development and fails in production.
  const dir = await mkdtemp(join(tmpdir(), 'outbox-file-tags-'))
  dirs.push(dir)
  const plain = { ...mail, attachments: [], html: null, text: '' }
  const overhead = Buffer.byteLength(
    JSON.stringify(buildSendMailBody(plain, { saveToSentItems: false })),
  )
  const edge = { ...plain, text: 'x'.repeat(MAX_REQUEST_BYTES - overhead - 10) }
  expect(
    Buffer.byteLength(JSON.stringify(buildSendMailBody(edge, { saveToSentItems: false }))),
  ).toBe(MAX_REQUEST_BYTES - 10)
  const tagged = buildSendMailBody(edge, {
    saveToSentItems: false,
    database: 'default',
    databaseId: crypto.randomUUID(),
  })
  expect(Buffer.byteLength(JSON.stringify(tagged))).toBeGreaterThan(MAX_REQUEST_BYTES)
  expect(await createFileSender(dir).send(edge, new AbortController().signal)).toMatchObject({
    kind: 'reject',
    code: 'message_too_large',
  })
  expect(await readdir(dir)).toEqual([])
})
