// File transport: writes one RFC 5322 .eml per message (built by nodemailer's MIME composer) for development.
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { MailAddress, OutboundMail, Sender } from '../outbox/sender.ts'
import { sentContentType } from './attachment-type.ts'
import { emlHeaderText } from './eml-header-text.ts'
import { buildSendMailBody, checkSendable } from './graph-message.ts'

// Loaded at the first message: a Graph or discard deployment never builds MIME, and evaluating the
// composer took about 3 ms of every start (bench round 20).
let composerModule: Promise<typeof import('nodemailer/lib/mail-composer')> | null = null
let mimeFuncs: Promise<typeof import('nodemailer/lib/mime-funcs')> | null = null

// What Graph's `importance` becomes in a message. Written here because MailComposer ignores its own
// `priority` option (only nodemailer's transporter turns it into headers), which dropped it silently.
const PRIORITY = {
  high: { 'X-Priority': '1 (Highest)', 'X-MSMail-Priority': 'High', Importance: 'High' },
  low: { 'X-Priority': '5 (Lowest)', 'X-MSMail-Priority': 'Low', Importance: 'Low' },
} as const

/**
 * The OutboxDatabase and OutboxDatabaseId a Graph deployment tags each request with, at their
 * largest (a MAILER_DATABASES name's 40 characters, a uuid), as enqueue counts them (sql/0054):
 * a mail that fits only without them (250 bytes more) is refused here too, not met first in
 * production.
 */
const LARGEST_DATABASE_TAGS = {
  database: 'x'.repeat(40),
  databaseId: '00000000-0000-0000-0000-000000000000',
}

const toAddress = (a: MailAddress) => (a.name ? { name: a.name, address: a.address } : a.address)

/** Builds the complete message; exported for tests and `send-test`. */
export async function composeEml(mail: OutboundMail): Promise<Buffer> {
  // By name in lower case: of the message's headers named alike but for case, the first alone, as
  // Graph's request carries it (graph-message.ts); nodemailer wrote each under the name spelled last.
  // Ours replace any of the message's of the same name.
  const named = new Map<string, [name: string, value: string]>()
  for (const [name, value] of Object.entries(mail.headers))
    if (!named.has(name.toLowerCase())) named.set(name.toLowerCase(), [name, value])
  const ours: Record<string, string> = { 'X-Outbox-Id': mail.outboxId }
  if (mail.correlationId) ours['X-Correlation-Id'] = mail.correlationId
  if (mail.importance === 'high' || mail.importance === 'low')
    Object.assign(ours, PRIORITY[mail.importance])
  for (const [name, value] of Object.entries(ours)) named.set(name.toLowerCase(), [name, value])
  mimeFuncs ??= import('nodemailer/lib/mime-funcs')
  const { encodeWord } = await mimeFuncs
  const headers = Object.fromEntries(
    [...named.values()].map(([name, value]) => [name, emlHeaderText(value, encodeWord)]),
  )
  // nodemailer recases header names its own way (X-Outbox-Id became X-Outbox-ID): ours, and the
  // message's X- headers, are written as spelled, as Graph sends them.
  const spelled = new Map([...named].map(([lower, [name]]) => [lower, name]))
  composerModule ??= import('nodemailer/lib/mail-composer')
  const { default: MailComposer } = await composerModule
  const composer = new MailComposer({
    from: toAddress(mail.from),
    to: mail.to.map(toAddress),
    cc: mail.cc.map(toAddress),
    bcc: mail.bcc.map(toAddress),
    replyTo: mail.replyTo.map(toAddress),
    subject: emlHeaderText(mail.subject, encodeWord),
    // Both bodies become multipart/alternative; text-only stays a single text/plain part.
    ...(mail.text !== null ? { text: mail.text } : {}),
    ...(mail.html !== null ? { html: mail.html } : {}),
    headers,
    normalizeHeaderKey: (key: string) => spelled.get(key.toLowerCase()) ?? key,
    messageId: `<outbox-${mail.outboxId}@outbox-mailer.invalid>`,
    // Only in-memory content is ever attached: never read a path or fetch a URL named in a row.
    disableFileAccess: true,
    disableUrlAccess: true,
    attachments: mail.attachments.map((a) => ({
      filename: a.filename,
      contentType: sentContentType(a.contentType),
      content: Buffer.from(a.contentBase64, 'base64'),
      ...(a.contentId ? { cid: a.contentId } : {}),
    })),
  })
  const node = composer.compile()
  // Keep Bcc in the file: it is the developer's record of who would receive the message.
  node.keepBcc = true
  return node.build()
}

/** The .eml the file transport writes for `outboxId` (named by it: a repeated attempt overwrites, so the directory never holds duplicates). */
export const emlPath = (dir: string, outboxId: string) => join(dir, `outbox-${outboxId}.eml`)

export function createFileSender(dir: string): Sender {
  let ready: Promise<unknown> | null = null
  return {
    name: 'file',
    async send(mail) {
      // What Graph would refuse (past its 4 MB request, 3 MB of attachments) is refused here as
      // Graph refuses it: a development that wrote it as an .eml met the failure first in production.
      // Counted with the database tags Graph's request carries, at their largest.
      const body = JSON.stringify(
        buildSendMailBody(mail, { saveToSentItems: false, ...LARGEST_DATABASE_TAGS }),
      )
      const tooLarge = checkSendable(mail, body)
      if (tooLarge) return { kind: 'reject', ...tooLarge }
      try {
        ready ??= mkdir(dir, { recursive: true })
        await ready
        const eml = await composeEml(mail)
        const file = emlPath(dir, mail.outboxId)
        const tmp = `${file}.${process.pid}.tmp`
        await writeFile(tmp, eml)
        await rename(tmp, file)
        return { kind: 'sent' }
      } catch (e) {
        ready = null
        return { kind: 'retry', code: 'file_write_failed', message: (e as Error).message }
      }
    },
  }
}
