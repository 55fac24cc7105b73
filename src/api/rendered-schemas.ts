// Wire shape of what one row renders to (rendered) or why it cannot (renderError): GET /v1/outbox/{id} alone, never a list.
import { z } from '@hono/zod-openapi'
import type { RowRendering } from '../outbox/row-rendering.ts'
import type { MailAddress, MailAttachment } from '../outbox/sender.ts'

const RenderedAddress = z
  .object({
    address: z.string().openapi({ example: 'ada@example.com' }),
    name: z.string().optional(),
  })
  .openapi('RenderedAddress')

const Addresses = z.array(RenderedAddress)

const Count = z.number().int().nonnegative()

const BYTES =
  'Its size in bytes as UTF-8 (as Graph counts its 4 MB request); null when not sent. Through Graph, a text body beside an html body that shows something is not in the request (see text), its size given all the same'

export const RenderedMessage = z
  .object({
    from: RenderedAddress.nullable().openapi({
      description:
        "The sender: the row's own (message.from, the template's from_address), else this process's MAIL_FROM; null for a row naming none where this process cannot tell the workers' MAIL_FROM (serve --role api, which sends nothing, without a MAIL_FROM or with one no worker could send from): fromNote says which",
    }),
    fromNote: z.string().nullable().openapi({
      example:
        "the row names no sender: its worker sends it from the workers' MAIL_FROM, which this process (serve --role api, which sends nothing) cannot tell: it has no MAIL_FROM",
      description:
        "Why from is null: the workers' MAIL_FROM sends the row, which this process cannot tell (it has no MAIL_FROM, or one that is no address, named with its problem). Null when from is given",
    }),
    to: Addresses,
    cc: Addresses,
    bcc: Addresses,
    hiddenRecipients: z
      .object({ to: Count, cc: Count, bcc: Count })
      .nullable()
      .openapi({
        example: { to: 0, cc: 0, bcc: 1 },
        description:
          "How many recipients of to, cc and bcc are left out of them: shown to a token confined to a tenant, a template's row leaves out those its template names itself (in to_addresses, cc_addresses, bcc_addresses an address written out, or made of text and placeholders, as an internal bcc or a team's inbox: the operator's), and shows those an entry fills from one column of the row alone ({{email}}, {{name}} <{{email}}>). Null when none is left out: always for a token of no tenant, and for a stored message's row",
      }),
    replyTo: Addresses,
    subject: z.string(),
    bodiesIn: z.enum(['rendered', 'message']).openapi({
      example: 'message',
      description:
        "Where the bodies sent are, each given once in the answer. rendered: in text and html (a template's row, whose message is null). message: in the row's message (a stored message's row), byte for byte as stored, so text and html are null here: a body is sent when its size (textBytes, htmlBytes) is not null, and is then message.text or message.html; one whose size is null is not sent (absent, or blank beside a body that shows something). Through Graph, whose message has one body, a text beside an html body that shows something is not sent either (see text)",
    }),
    text: z.string().nullable().openapi({
      description:
        "The text body the renderer hands the transport: null when there is none, when it is blank beside an html body that shows something (that one is the whole mail), or when bodiesIn is message (then it is message.text, if textBytes is not null). Beside an html body that shows something, Graph's request carries the html alone (a Graph message has one body); the file transport's .eml holds both (multipart/alternative)",
    }),
    html: z.string().nullable().openapi({
      description:
        'The html body as sent, as text is (when bodiesIn is message: message.html, if htmlBytes is not null)',
    }),
    textBytes: z.number().int().nullable().openapi({ description: BYTES }),
    htmlBytes: z.number().int().nullable().openapi({ description: BYTES }),
    importance: z.enum(['low', 'normal', 'high']).nullable(),
    headers: z.record(z.string(), z.string()).openapi({
      description:
        'The X- headers the message names, as stored: one whose value is empty or blanks (spaces, tabs) is not sent (neither Graph nor the .eml carries it). Not listed here, X-Outbox-Id and, when the row has a correlation id, X-Correlation-Id are added at send',
    }),
    attachments: z
      .array(
        z.object({
          filename: z.string(),
          contentType: z.string(),
          contentId: z.string().nullable(),
          bytes: z.number().int().openapi({ description: 'Its decoded size in bytes' }),
        }),
      )
      .openapi({
        description:
          "Each file by name and size, not its content (a stored message's is in message.attachments; a template has none)",
      }),
  })
  .openapi('RenderedMessage', {
    description:
      "What the row's worker sends, rendered now by the renderer it sends through (with this process's MAIL_FROM and MAIL_FROM_ALLOWED): a template's row from the template as it stands and the row's sourceRow, a stored message as checked and completed at send. A row sent before its template was edited sent what the template then said. Null when the row cannot render now (renderError)",
  })

export const RenderErrorShape = z
  .object({
    code: z.string().openapi({
      example: 'template_not_found',
      description:
        "What the row fails with at send: template_not_found, template_error (a placeholder naming no column, an address that is none after rendering, a blank subject or body), invalid_message, no_sender (a row naming no sender, this process's MAIL_FROM unset: a process that drains, its worker fails it so) or sender_not_allowed",
    }),
    message: z.string().openapi({
      example: 'template "inquiry" no longer exists',
      description: "The failure's text, as the row's lastError would hold it",
    }),
  })
  .openapi('RenderError', {
    description:
      'Why the row cannot render now, as its worker would fail it (never sent): fix the template or the row, then retry it. Null when it renders (rendered)',
  })

const address = (a: MailAddress): z.infer<typeof RenderedAddress> =>
  a.name === undefined ? { address: a.address } : { address: a.address, name: a.name }

const utf8Bytes = (s: string | null) => (s === null ? null : Buffer.byteLength(s, 'utf8'))

// Whole groups of four, whitespace gone (sendableAttachments): three bytes each, less the padding.
const decodedBytes = (base64: string) =>
  (base64.length / 4) * 3 - (base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0)

const attachment = (a: MailAttachment) => ({
  filename: a.filename,
  contentType: a.contentType,
  contentId: a.contentId ?? null,
  bytes: decodedBytes(a.contentBase64),
})

/**
 * `bodiesIn`: a stored message's bodies render as stored, byte for byte, or are not sent
 * (sendableBodies, shownBodies: nothing added, nothing normalised), so the answer gives them once,
 * in its `message`, and their sizes here say which are sent; a 1 MB body answered twice.
 */
export function toRenderedJson(
  r: RowRendering,
  bodiesIn: 'rendered' | 'message',
): {
  rendered: z.infer<typeof RenderedMessage> | null
  renderError: z.infer<typeof RenderErrorShape> | null
} {
  if (!r.mail) return { rendered: null, renderError: r.error }
  const m = r.mail
  const given = bodiesIn === 'rendered'
  return {
    rendered: {
      from: m.from === null ? null : address(m.from),
      fromNote: r.fromNote,
      to: m.to.map(address),
      cc: m.cc.map(address),
      bcc: m.bcc.map(address),
      hiddenRecipients: r.hiddenRecipients,
      replyTo: m.replyTo.map(address),
      subject: m.subject,
      bodiesIn,
      text: given ? m.text : null,
      html: given ? m.html : null,
      textBytes: utf8Bytes(m.text),
      htmlBytes: utf8Bytes(m.html),
      importance: m.importance,
      headers: m.headers,
      attachments: m.attachments.map(attachment),
    },
    renderError: null,
  }
}
