// Wire shape of a message in POST /v1/outbox: types, and the strings written into headers (control characters) by SQL's own rules.
// mailer.enqueue_email validates the content, so objects are loose (unknown keys reach Postgres,
// which names them) and nothing is stricter than SQL.
import { z } from '@hono/zod-openapi'
import { CONTROL_CHARACTER_MESSAGE, HEADER_VALUE_MESSAGE } from '../outbox/header-text.ts'
import { MIME_TYPE, MIME_TYPE_MESSAGE } from '../outbox/mime-type.ts'

const ONE_LINE =
  'Written into a header: each run of control characters (U+0001-U+001F with CR, LF and TAB, U+007F) becomes one space, dropped at either end'

// As patterns, so the document refuses them too (a refinement would not reach it): SQL's classes.
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point.
export const NO_CONTROL_CHARACTER = /^[^\u0001-\u001f\u007f]*$/
// A tab is whitespace in a header value (RFC 5322).
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point.
const ONE_LINE_HEADER_VALUE = /^[^\u0001-\u0008\u000a-\u001f\u007f]*$/

// A file name or content id becomes a header parameter: a control character in one is refused.
const headerParameter = (description: string) =>
  z
    .string()
    .regex(NO_CONTROL_CHARACTER, CONTROL_CHARACTER_MESSAGE)
    .openapi({ description: `${description}; no control character (U+0001-U+001F, U+007F)` })

// mailer.normalize_message's base64 check (sql/0024), in the document only. Its whole groups of
// four (sql/0029) are in the description: a pattern for them, with whitespace allowed anywhere
// before the padding, took a backtracking validator (JavaScript's) 2-4 s on a 4 MB attachment.
const BASE64 = '^[A-Za-z0-9+/\\t\\n\\v\\f\\r ]*(={1,2}[\\t\\n\\v\\f\\r ]*)?$'

// The names normalize_message takes (X-Outbox-Id and X-Correlation-Id aside). propertyNames is
// JSON Schema's (OpenAPI 3.1), which the metadata type, of 3.0, lacks.
const X_HEADER_NAMES = {
  propertyNames: { pattern: '^[Xx]-[A-Za-z0-9-]{1,70}$' },
} as Record<never, never>

// Loose here, closed in the document: SQL refuses every key it does not know (with a 400 naming
// it), and a client generated from the document must not be told otherwise.
export const CLOSED = { additionalProperties: false } as const

// A union's own refusal (neither branch got past the value's type) says what the value must be;
// one branch past it is named by its own issues (union-issues.ts).
const Recipient = z
  .union(
    [
      z.string().openapi({ example: 'ada@example.com' }),
      z
        .looseObject({
          address: z.string(),
          name: z.string().nullable().optional().openapi({ description: ONE_LINE }),
        })
        .openapi(CLOSED),
    ],
    { error: 'must be an address string or {"address","name"}' },
  )
  .openapi('Recipient', {
    description:
      '"a@b.c", "Name <a@b.c>" (a name with " , ; or @ in double quotes: "\\"Doe, John\\" <j@b.c>") or {"address","name"}. A domain of other letters (ann@bücher.example) is stored as its A-labels (ann@xn--bcher-kva.example)',
  })

// mailer.normalize_message's limits (sql/0012, 0015), in the document only: at most 500 in to,
// cc and bcc together (Exchange Online's limit per message) and 500 in replyTo; one list past 500
// is what the document can say.
const Recipients = z
  .union(
    [
      Recipient,
      z
        .array(Recipient)
        .openapi({ maxItems: 500, description: 'At most 500: to, cc and bcc together; replyTo' }),
    ],
    { error: 'must be an address string, {"address","name"} or a list of them' },
  )
  .nullable()
  .optional()

const Attachment = z
  .looseObject({
    filename: headerParameter('The file name the recipient sees').min(
      1,
      'must not be empty: the file name the recipient sees, e.g. report.pdf',
    ),
    // The characters alone, in one linear pass: normalize_message judges the groups and padding
    // (a pattern for those took a backtracking validator seconds on 4 MB), and named a character
    // outside the alphabet only as the whole attachment being wrong.
    contentBase64: z
      .string()
      .superRefine((content, ctx) => {
        const at = content.search(/[^A-Za-z0-9+/=\t\n\v\f\r ]/)
        if (at >= 0)
          ctx.addIssue({
            code: 'custom',
            message: `must be base64: A-Z a-z 0-9 + / and = at the end (line breaks and spaces are taken); character ${[...content.slice(0, at)].length + 1} is none of them`,
          })
      })
      .openapi({
        pattern: BASE64,
        description:
          'Base64 (standard alphabet) in whole groups of four, the last padded with =; line breaks and spaces are taken. All attachments of a message: at most 3 MB decoded (Graph sendMail)',
      }),
    // Refused here as mailer.enqueue_email refuses it, named by its path before any statement runs.
    contentType: z.string().regex(MIME_TYPE, MIME_TYPE_MESSAGE).nullable().optional(),
    contentId: headerParameter('Makes the attachment inline, for the HTML\'s <img src="cid:…">')
      .nullable()
      .optional(),
  })
  .openapi(CLOSED)

export const Message = z
  .looseObject({
    from: Recipient.nullable().optional(),
    to: Recipients,
    cc: Recipients,
    bcc: Recipients,
    replyTo: Recipients,
    subject: z
      .string()
      .optional()
      .openapi({ description: `Required by enqueue_email; at most 998 characters. ${ONE_LINE}` }),
    text: z.string().nullable().optional(),
    html: z.string().nullable().optional(),
    headers: z
      .record(z.string(), z.string().regex(ONE_LINE_HEADER_VALUE, HEADER_VALUE_MESSAGE))
      .nullable()
      .optional()
      .openapi({
        maxProperties: 3,
        ...X_HEADER_NAMES,
        description:
          'Up to three X- headers, at most 256 KB together as "Name: value" lines (Exchange Online\'s limit on a message\'s header), no two named alike but for case (X-Trace and x-trace are one header); a value with a control character other than a tab is refused',
      }),
    attachments: z.array(Attachment).nullable().optional(),
    importance: z.enum(['low', 'normal', 'high']).nullable().optional(),
  })
  .openapi('Message', {
    ...CLOSED,
    required: ['subject'],
    description:
      'Validated by mailer.enqueue_email: at least one recipient, a subject, text or html (not both empty or blanks only: neither "" nor blanks is a body, unless an attachment is the mail); its Graph sendMail request at most 4 MB (attachments as base64), its attachments at most 3 MB decoded; its header at most 256 KB (Exchange Online\'s limit) as its subject, from, to, cc, replyTo (each "name <address>") and X- headers take as lines.',
    example: { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' },
  })
