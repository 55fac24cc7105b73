// One enqueued message sent by each transport: the .eml read back by a MIME reader and the request the strict fake Graph took hold the same attachments, charsets and headers.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createFileSender } from '../../src/transport/file-sender.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { BLANK_BODIES } from '../support/blank-bodies.ts'
import { useTestDb } from '../support/db.ts'
import { decodeWords, type EmlPart, header, leafParts, readEml } from '../support/eml-reader.ts'
import { createTestEngine, type TestEngine } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'
import { type FakeGraph, graphConfigFor, startFakeGraph } from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const FROM = 'sender@example.com'
let dir: string
let engine: TestEngine | null = null
let graph: FakeGraph | null = null

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outbox-agree-'))
})
afterEach(async () => {
  await engine?.stop()
  await graph?.stop()
  engine = null
  graph = null
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

interface GraphAttachment {
  name: string
  contentType: string
  contentBytes: string
  isInline: boolean
}
interface Sent {
  /** The file transport's .eml, read back. */
  eml: EmlPart
  /** Its lines as written, line breaks aside. */
  lines: string[]
  /** The `message` of the sendMail request the fake Graph accepted. */
  request: {
    subject: string
    body: { contentType: string; content: string }
    internetMessageHeaders: { name: string; value: string }[]
    attachments?: GraphAttachment[]
  }
}

/** Enqueues `message` with mailer.enqueue_email and drains it through the file transport, then again through Graph's. */
async function sentBothWays(message: Record<string, unknown>): Promise<Sent> {
  const enqueue = async () =>
    (
      await t.pool.query<{ id: string }>('select mailer.enqueue_email($1::jsonb) as id', [
        JSON.stringify({ to: 'rcpt@example.com', subject: 'Hello', ...message }),
      ])
    ).rows[0]!.id
  const fileRow = await enqueue()
  engine = createTestEngine(t, { deps: { sender: createFileSender(dir) } })
  await engine.start()
  await engine.events.waitFor(settledFor(fileRow, 'sent'))
  await engine.stop()
  // Enqueued once the file transport's engine stopped, so that it never claims this one.
  const graphRow = await enqueue()
  const secret = randomUUID()
  graph = await startFakeGraph({ clientSecret: secret, mailboxes: [FROM] })
  const transport = createGraphTransport(graphConfigFor(graph, { clientSecret: secret }), FROM, {
    fetch,
    clock: systemClock,
    log: silentLogger,
  })
  engine = createTestEngine(t, { deps: { sender: transport.sender } })
  await engine.start()
  await engine.events.waitFor(settledFor(graphRow, 'sent'))
  const accepted = graph.accepted.find((a) => a.outboxId === graphRow)
  if (!accepted) throw new Error(`the fake accepted no message for row ${graphRow}`)
  const file = await readFile(join(dir, `outbox-${fileRow}.eml`))
  return {
    eml: readEml(file),
    lines: file.toString('latin1').split('\r\n'),
    request: accepted.body.message as Sent['request'],
  }
}

const base64 = (bytes: Buffer) => bytes.toString('base64')

/** The .eml's part named `filename`, as a reader shows it: its type, charset, disposition and bytes (base64). */
function emlAttachment(eml: EmlPart, filename: string) {
  const parts = leafParts(eml).filter((p) => p.filename === filename)
  if (parts.length !== 1) return `${parts.length} parts named ${filename} hold content`
  const p = parts[0]!
  return {
    type: p.type,
    charset: p.params.charset,
    disposition: p.disposition,
    bytes: base64(p.body),
  }
}

function graphAttachment(request: Sent['request'], filename: string) {
  const a = request.attachments?.find((x) => x.name === filename)
  if (!a) throw new Error(`no attachment named ${filename} in Graph's request`)
  return { contentType: a.contentType, bytes: a.contentBytes }
}

describe('attachments', () => {
  test('one typed multipart/* or message/* keeps its bytes: in the .eml and in Graph’s request as application/octet-stream', async () => {
    // A MIME writer takes such a type for parts of its own: nodemailer wrote the bytes as the
    // preamble of a multipart with no part (a reader finds no content) and message/* unencoded,
    // 8bit and inline (RFC 2046 5.2.1 allows it no base64, so binary bytes cannot pass).
    const rfc822 = Buffer.from('Subject: forwarded\r\n\r\nGr\xfc\xdfe \x00\xff\r\n', 'latin1')
    const cases = [
      ['parts.bin', 'multipart/mixed', randomBytes(12)],
      ['related.bin', 'multipart/related; type="text/html"', randomBytes(12)],
      ['forwarded.eml', 'message/rfc822', rfc822],
      ['global.eml', 'message/global', rfc822],
      ['upper.eml', 'MESSAGE/RFC822', rfc822],
    ] as const
    const { eml, request } = await sentBothWays({
      text: 'see attached',
      attachments: cases.map(([filename, contentType, bytes]) => ({
        filename,
        contentType,
        contentBase64: base64(bytes),
      })),
    })
    expect(
      cases.map(([filename, contentType]) => [
        filename,
        contentType,
        emlAttachment(eml, filename),
        graphAttachment(request, filename),
      ]),
    ).toEqual(
      cases.map(([filename, contentType, bytes]) => [
        filename,
        contentType,
        {
          type: 'application/octet-stream',
          charset: undefined,
          disposition: 'attachment',
          bytes: base64(bytes),
        },
        { contentType: 'application/octet-stream', bytes: base64(bytes) },
      ]),
    )
  })

  test('a zero-byte attachment (contentBase64 "") is sent by both: an empty part, contentBytes ""', async () => {
    // An empty file (a CSV export of no rows, an empty log) is a file: Graph's schema takes
    // contentBytes "" (Edm.Binary, zero bytes) and documents no refusal, so it is sent, not refused.
    const { eml, request } = await sentBothWays({
      text: 'see attached',
      attachments: [{ filename: 'empty.csv', contentType: 'text/csv', contentBase64: '' }],
    })
    const parts = leafParts(eml).filter((p) => p.filename === 'empty.csv')
    expect(parts.map((p) => [p.type, p.disposition, p.body.length])).toEqual([
      ['text/csv', 'attachment', 0],
    ])
    expect(request.attachments).toEqual([
      expect.objectContaining({ name: 'empty.csv', contentType: 'text/csv', contentBytes: '' }),
    ])
  })

  test('the charset an attachment’s type names is kept in both, its bytes never transcoded; none is added', async () => {
    // An attachment is bytes: the charset says what they are, and neither transport converts them
    // (Latin-1 bytes stay Latin-1) nor claims one the type did not name.
    const latin1 = Buffer.from('Gr\xfc\xdfe aus K\xf6ln', 'latin1')
    const cases = [
      ['latin1.txt', 'text/plain; charset=iso-8859-1', latin1, 'iso-8859-1'],
      ['page.html', 'text/html; charset="windows-1252"', latin1, 'windows-1252'],
      [
        'sjis.csv',
        'text/csv; charset=Shift_JIS',
        Buffer.from([0x82, 0xa0, 0x2c, 0x31]),
        'Shift_JIS',
      ],
      ['plain.txt', 'text/plain', Buffer.from('Grüße aus Köln'), undefined],
    ] as const
    const { eml, request } = await sentBothWays({
      text: 'see attached',
      attachments: cases.map(([filename, contentType, bytes]) => ({
        filename,
        contentType,
        contentBase64: base64(bytes),
      })),
    })
    expect(
      cases.map(([filename]) => [
        filename,
        emlAttachment(eml, filename),
        graphAttachment(request, filename),
      ]),
    ).toEqual(
      cases.map(([filename, contentType, bytes, charset]) => [
        filename,
        {
          type: contentType.split(';')[0]!,
          charset,
          disposition: 'attachment',
          bytes: base64(bytes),
        },
        { contentType, bytes: base64(bytes) },
      ]),
    )
  })
})

test('the bodies are UTF-8: the .eml says so on each text part, Graph takes them as JSON strings', async () => {
  const text = 'Grüße aus Köln ✓ \u{1f4e7}'
  const html = `<p>${text}</p>`
  const { eml, request } = await sentBothWays({ text, html })
  const bodies = leafParts(eml).map((p) => [p.type, p.params.charset, p.body.toString('utf8')])
  expect(bodies).toEqual([
    ['text/plain', 'utf-8', text],
    ['text/html', 'utf-8', html],
  ])
  expect(request.body).toEqual({ contentType: 'HTML', content: html })
})

test('a text beside an empty html is the body of both: an empty html is no body, as the .eml has none', async () => {
  // `html: ""` beside a text (a client's `html: htmlBody ?? ""`, a template whose html_body is '').
  const text = 'Your order has shipped.'
  const { eml, request } = await sentBothWays({ text, html: '' })
  // The composer ends a 7bit body with the line break a message's last line needs.
  const parts = leafParts(eml).map((p) => [p.type, p.body.toString('utf8').replace(/\r\n$/, '')])
  expect(parts).toEqual([['text/plain', text]])
  expect(request.body).toEqual({ contentType: 'Text', content: text })
})

test('a blank body beside one that shows something is in neither: the other is the body of both', async () => {
  // A client's `html: htmlBody ?? " "` or a template's layout of blanks beside a real text (and
  // the other way round): the recipient saw the blank HTML, the text dropped (Graph), or a reader
  // showed the blank part (.eml). Blank as blank-body.ts says, each character of it at once.
  const blank = BLANK_BODIES.map(([, b]) => b).join('')
  const text = 'Your order has shipped.'
  const html = '<p>Your order has shipped.</p>'
  const bodies = async (message: Record<string, unknown>) => {
    const { eml, request } = await sentBothWays(message)
    await engine?.stop()
    await graph?.stop()
    engine = null
    graph = null
    return {
      eml: leafParts(eml).map((p) => [p.type, p.body.toString('utf8').replace(/\r\n$/, '')]),
      graph: request.body,
    }
  }
  expect(await bodies({ text, html: blank })).toEqual({
    eml: [['text/plain', text]],
    graph: { contentType: 'Text', content: text },
  })
  expect(await bodies({ text: blank, html })).toEqual({
    eml: [['text/html', html]],
    graph: { contentType: 'HTML', content: html },
  })
})

describe('a subject or X- header is the text given, in both', () => {
  // A reader decodes an encoded word wherever unstructured text holds one (RFC 2047 6.1), and an
  // application may hand on a subject it read from a mail's raw header. Graph takes the subject as
  // text, and Exchange shows it so.
  test('one that reads as an encoded word (RFC 2047) is not decoded by the .eml’s reader', async () => {
    const subject = 'Re: =?UTF-8?B?SGFja2Vk?= your order'
    const tag = '=?UTF-8?Q?Hacked?='
    const { eml, request } = await sentBothWays({ subject, text: 'hi', headers: { 'X-Tag': tag } })
    expect([decodeWords(header(eml, 'Subject')!), decodeWords(header(eml, 'X-Tag')!)]).toEqual([
      subject,
      tag,
    ])
    expect(request.subject).toBe(subject)
    expect(request.internetMessageHeaders.find((h) => h.name === 'X-Tag')?.value).toBe(tag)
  })

  test('one with a word longer than a line is written in lines of at most 998 characters (RFC 5322 2.1.1)', async () => {
    // 998 characters is the longest subject enqueue takes; an X- header may hold 256 KB.
    const subject = 's'.repeat(998)
    const link = `https://example.com/reset?token=${'t'.repeat(2000)}`
    const { eml, lines, request } = await sentBothWays({
      subject,
      text: 'hi',
      headers: { 'X-Link': link },
    })
    expect(
      lines.filter((l) => l.length > 998).map((l) => `${l.slice(0, 20)}… (${l.length})`),
    ).toEqual([])
    expect([decodeWords(header(eml, 'Subject')!), decodeWords(header(eml, 'X-Link')!)]).toEqual([
      subject,
      link,
    ])
    expect(request.subject).toBe(subject)
  })
})

test('a header whose value is empty or blank is in neither; the others are in both, as given', async () => {
  // nodemailer writes no header line without a value; Graph's request carried it. Exchange's
  // handling of an empty internetMessageHeader value is documented nowhere (graph.md §2), so
  // neither carries one and no row can fail on it.
  const headers = { 'X-Empty': '', 'X-Blank': ' \t ', 'X-Tag': 'v' }
  const { eml, request } = await sentBothWays({ text: 'hi', headers })
  // Each row has its own X-Outbox-Id; the rest is the message's, sorted as each writes its own order.
  const inEml = [...eml.headers]
    .flatMap(([name, values]) => values.map((v) => [name, v]))
    .filter(([name]) => /^x-/.test(name!))
  const inRequest = request.internetMessageHeaders.map((h) => [h.name.toLowerCase(), h.value])
  const theMessages = (lines: string[][]) =>
    lines.filter(([name]) => name !== 'x-outbox-id').sort((a, b) => a[0]!.localeCompare(b[0]!))
  expect(theMessages(inRequest)).toEqual(theMessages(inEml))
  expect(theMessages(inRequest)).toEqual([['x-tag', 'v']])
  expect([inEml, inRequest].map((l) => l.filter(([n]) => n === 'x-outbox-id').length)).toEqual([
    1, 1,
  ])
  expect(header(eml, 'X-Tag')).toBe('v')
})
