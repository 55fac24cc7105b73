// sendMail bodies: every body we build passes the Graph schema extract and Graph's extra rules.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { OutboundMail } from '../../src/outbox/sender.ts'
import {
  attachmentBytes,
  buildSendMailBody,
  checkSendable,
  MAX_INLINE_ATTACHMENT_BYTES,
  MAX_REQUEST_BYTES,
  OUTBOX_ID_PROPERTY_ID,
} from '../../src/transport/graph-message.ts'
import { sendMailBodyProblems } from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function mail(over: Partial<OutboundMail> = {}): OutboundMail {
  return {
    outboxId: '42',
    tenant: 't1',
    attempt: 1,
    correlationId: null,
    from: { address: 'noreply@contoso.com' },
    to: [{ address: 'ann@contoso.com' }],
    cc: [],
    bcc: [],
    replyTo: [],
    subject: 'Hello',
    text: 'Plain text\nwith two lines',
    html: null,
    importance: null,
    headers: {},
    attachments: [],
    ...over,
  }
}

function build(m: OutboundMail, saveToSentItems = true) {
  const body = buildSendMailBody(m, { saveToSentItems })
  expect(sendMailBodyProblems(body)).toEqual([])
  return body.message
}

describe('buildSendMailBody', () => {
  test('a text-only message is a Text body holding exactly the text', () => {
    const m = build(mail())
    expect(m.body).toEqual({ contentType: 'Text', content: 'Plain text\nwith two lines' })
    expect(m.subject).toBe('Hello')
    expect(m.toRecipients).toEqual([{ emailAddress: { address: 'ann@contoso.com' } }])
    expect(m.ccRecipients).toBeUndefined()
    expect(m.importance).toBeUndefined()
  })

  test("from's name is not sent: the mailbox in the URL sends, under its directory name", () => {
    // Exchange Online writes the sending mailbox's own display name whatever from or sender names
    // (README; msgraph-sdk-php#183, Mailozaurr#39), and a from whose address is a Graph user id
    // (MAIL_FROM may be one) would be no address at all: neither is sent.
    const m = build(mail({ from: { address: 'noreply@contoso.com', name: 'Contoso Billing' } }))
    expect(Object.keys(m).filter((k) => k === 'from' || k === 'sender')).toEqual([])
  })

  test('html wins over text when both exist', () => {
    const m = build(mail({ html: '<p>Hi</p>' }))
    expect(m.body).toEqual({ contentType: 'HTML', content: '<p>Hi</p>' })
  })

  test('cc, bcc, replyTo and names', () => {
    const m = build(
      mail({
        to: [{ address: 'ann@contoso.com', name: 'Ann' }],
        cc: [{ address: 'bob@contoso.com' }],
        bcc: [{ address: 'eve@contoso.com', name: 'Eve' }],
        replyTo: [{ address: 'desk@contoso.com', name: 'Help desk' }],
      }),
    )
    expect(m.toRecipients).toEqual([{ emailAddress: { address: 'ann@contoso.com', name: 'Ann' } }])
    expect(m.ccRecipients).toEqual([{ emailAddress: { address: 'bob@contoso.com' } }])
    expect(m.bccRecipients).toEqual([{ emailAddress: { address: 'eve@contoso.com', name: 'Eve' } }])
    expect(m.replyTo).toEqual([
      { emailAddress: { address: 'desk@contoso.com', name: 'Help desk' } },
    ])
  })

  test.each(['low', 'normal', 'high'] as const)('importance %s', (importance) => {
    expect(build(mail({ importance })).importance).toBe(importance)
  })

  test('headers: X-Outbox-Id always, X-Correlation-Id when known, own x- headers, at most 5', () => {
    const m = build(
      mail({
        correlationId: 'corr-1',
        headers: {
          'X-Campaign': 'spring',
          'List-Unsubscribe': '<mailto:u@contoso.com>',
          'x-outbox-id': 'spoofed',
          'X-A': '1',
          'X-B': '2',
          'X-C': '3',
        },
      }),
    )
    expect(m.internetMessageHeaders).toEqual([
      { name: 'X-Outbox-Id', value: '42' },
      { name: 'X-Correlation-Id', value: 'corr-1' },
      { name: 'X-Campaign', value: 'spring' },
      { name: 'X-A', value: '1' },
      { name: 'X-B', value: '2' },
    ])
  })

  test('the header list is never empty', () => {
    expect(build(mail()).internetMessageHeaders).toEqual([{ name: 'X-Outbox-Id', value: '42' }])
  })

  test('the outbox id travels as our single-value extended property', () => {
    expect(build(mail()).singleValueExtendedProperties).toEqual([
      { id: OUTBOX_ID_PROPERTY_ID, value: '42' },
    ])
    expect(OUTBOX_ID_PROPERTY_ID).toMatch(/^String \{[0-9a-f-]{36}\} Name OutboxId$/)
  })

  test('attachments are fileAttachments; a Content-ID makes one inline', () => {
    const m = build(
      mail({
        html: '<img src="cid:logo">',
        attachments: [
          { filename: 'a.txt', contentType: 'text/plain', contentBase64: 'SGVsbG8gV29ybGQh' },
          {
            filename: 'logo.png',
            contentType: 'image/png',
            contentBase64: 'iVBORw0K\nGgo=',
            contentId: 'logo',
          },
        ],
      }),
    )
    expect(m.attachments).toEqual([
      {
        '@odata.type': '#microsoft.graph.fileAttachment',
        name: 'a.txt',
        contentType: 'text/plain',
        contentBytes: 'SGVsbG8gV29ybGQh',
        isInline: false,
      },
      {
        '@odata.type': '#microsoft.graph.fileAttachment',
        name: 'logo.png',
        contentType: 'image/png',
        contentBytes: 'iVBORw0KGgo=',
        contentId: 'logo',
        isInline: true,
      },
    ])
  })

  test('saveToSentItems follows the option', () => {
    expect(buildSendMailBody(mail(), { saveToSentItems: false }).saveToSentItems).toBe(false)
    expect(buildSendMailBody(mail(), { saveToSentItems: true }).saveToSentItems).toBe(true)
  })

  test('the schema check itself catches what Graph refuses', () => {
    const body = buildSendMailBody(mail(), { saveToSentItems: true })
    expect(sendMailBodyProblems({ ...body, extra: 1 })).not.toEqual([])
    expect(
      sendMailBodyProblems({
        message: { ...body.message, body: { contentType: 'markdown', content: '' } },
      }),
    ).not.toEqual([])
    expect(
      sendMailBodyProblems({ message: { ...body.message, internetMessageHeaders: [] } }),
    ).not.toEqual([])
    expect(sendMailBodyProblems({ message: { ...body.message, toRecipients: [] } })).not.toEqual([])
  })

  test('a zero-byte attachment is sent with contentBytes "", which Graph requires present', () => {
    // contentBytes is Edm.Binary (graph-sendmail-schema.json): "" is zero bytes, valid base64. A
    // fileAttachment without it Graph refuses (ErrorRequiredPropertyMissing, msgraph-sdk-python#667).
    const m = build(
      mail({
        attachments: [{ filename: 'empty.csv', contentType: 'text/csv', contentBase64: '' }],
      }),
    )
    expect(m.attachments).toEqual([
      expect.objectContaining({ name: 'empty.csv', contentType: 'text/csv', contentBytes: '' }),
    ])
    const [attachment] = m.attachments as Record<string, unknown>[]
    const { contentBytes: _, ...without } = attachment!
    for (const a of [without, { ...without, contentBytes: null }]) {
      expect(sendMailBodyProblems({ message: { ...m, attachments: [a] } })).toEqual([
        'ErrorRequiredPropertyMissing: Required property is missing.',
      ])
    }
  })
})

describe('the fake refuses a property its type does not have, as Graph does (RequestBodyRead)', () => {
  const body = buildSendMailBody(
    mail({
      attachments: [{ filename: 'a.txt', contentType: 'text/plain', contentBase64: 'aGk=' }],
    }),
    { saveToSentItems: true },
  )
  const message = body.message as Record<string, unknown>
  const attachment = (message.attachments as Record<string, unknown>[])[0]!
  // Each type below is not an open type (x-openType false in the schema extract): a misspelt
  // or invented property is refused by Graph, not ignored.
  test.each([
    ['recipient', { toRecipients: [{ emailAddress: { address: 'a@contoso.com' }, type: 'to' }] }],
    ['emailAddress', { toRecipients: [{ emailAddress: { address: 'a@contoso.com', mail: 'x' } }] }],
    ['itemBody', { body: { contentType: 'Text', content: 'x', charset: 'utf-8' } }],
    ['internetMessageHeader', { internetMessageHeaders: [{ name: 'X-A', value: 'b', raw: 'c' }] }],
    ['fileAttachment', { attachments: [{ ...attachment, inline: false }] }],
    [
      'singleValueLegacyExtendedProperty',
      { singleValueExtendedProperties: [{ id: OUTBOX_ID_PROPERTY_ID, value: '42', type: 's' }] },
    ],
  ])('%s', (type, change) => {
    expect(sendMailBodyProblems({ ...body, message: { ...message, ...change } })).toEqual([
      expect.stringContaining(`on type 'microsoft.graph.${type}'`),
    ])
  })
  test('OData annotations (@odata.type) are no property', () => {
    const typed = {
      ...message,
      toRecipients: [
        {
          '@odata.type': '#microsoft.graph.recipient',
          emailAddress: { address: 'a@contoso.com' },
        },
      ],
    }
    expect(sendMailBodyProblems({ ...body, message: typed })).toEqual([])
  })
})

describe('checkSendable', () => {
  const bytes = (n: number) => Buffer.alloc(n, 7).toString('base64')
  const withAttachments = (...sizes: number[]) =>
    mail({
      attachments: sizes.map((n, i) => ({
        filename: `f${i}.bin`,
        contentType: 'application/octet-stream',
        contentBase64: bytes(n),
      })),
    })
  const check = (m: OutboundMail) =>
    checkSendable(m, JSON.stringify(buildSendMailBody(m, { saveToSentItems: true })))

  test('counts decoded bytes, not base64 characters', () => {
    expect(attachmentBytes(withAttachments(10))).toBe(10)
    expect(attachmentBytes(withAttachments(11, 1))).toBe(12)
  })

  test('attachments just under 3 MB fit one request', () => {
    expect(check(withAttachments(MAX_INLINE_ATTACHMENT_BYTES - 64 * 1024))).toBeNull()
  })

  test('more than 3 MB of attachments in total is a permanent attachment_too_large', () => {
    const half = MAX_INLINE_ATTACHMENT_BYTES / 2 + 1
    expect(check(withAttachments(half, half))).toMatchObject({ code: 'attachment_too_large' })
  })

  test('exactly 3 MB of attachments is refused too: with the JSON around it the request passes 4 MB', () => {
    expect(check(withAttachments(MAX_INLINE_ATTACHMENT_BYTES))).toMatchObject({
      code: 'attachment_too_large',
      message: expect.stringMatching(/request is \d+ bytes/),
    })
  })

  test('a body over 4 MB without attachments is message_too_large', () => {
    const huge = mail({ html: 'x'.repeat(MAX_REQUEST_BYTES) })
    expect(check(huge)).toMatchObject({ code: 'message_too_large' })
  })
})
