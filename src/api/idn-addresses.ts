// An address whose domain is internationalized (ann@bücher.example) written as every mail server takes it: the domain's A-labels (punycode), by node:url's domainToASCII (UTS #46).
import { domainToASCII } from 'node:url'
import { AppError } from '../errors.ts'

const FIELDS = ['from', 'to', 'cc', 'bcc', 'replyTo'] as const

// The domain of an address, alone or closing "Name <address>": after its last @, up to the > and
// blanks that may end it. Anything else is left to mailer.normalize_recipients to judge.
const DOMAIN = /@([^@<>\s]+)(\s*>?\s*)$/
// biome-ignore lint/suspicious/noControlCharactersInRegex: ASCII is the point.
const ASCII = /^[\x00-\x7f]*$/

const NOT_IDN =
  'is not a valid e-mail address: its domain is no internationalized domain name (IDNA, UTS #46)'

/**
 * The message with each address's non-ASCII domain replaced by its A-labels; an ASCII domain, the
 * local part and the name as given. Graph takes the A-label form, as does any receiving server
 * with or without SMTPUTF8; Microsoft 365 mailboxes have no IDN domain (so MAIL_FROM_ALLOWED and a
 * token's senders name none). Stored so, a replay under its Idempotency-Key is compared so too.
 * A domain domainToASCII refuses is a 400 naming the field, as enqueue_email names one.
 */
export function withAsciiDomains<T>(message: T): T {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return message
  const m = message as Record<string, unknown>
  const out: Record<string, unknown> = { ...m }
  for (const field of FIELDS) {
    const v = m[field]
    if (v === undefined || v === null) continue
    const items = Array.isArray(v) ? v : [v]
    const mapped = items.map((item, i) => {
      // A lone value is named by the field, as it was sent and as enqueueEmail names it (from is
      // one address: sql/0163); a list's entries by their index.
      const path = Array.isArray(v) ? `message.${field}.${i}` : `message.${field}`
      if (typeof item === 'string') return asciiDomain(item, path)
      if (typeof item === 'object' && item !== null && typeof item.address === 'string') {
        return { ...item, address: asciiDomain(item.address, `${path}.address`) }
      }
      return item
    })
    out[field] = Array.isArray(v) ? mapped : mapped[0]
  }
  return out as T
}

function asciiDomain(s: string, path: string): string {
  const m = DOMAIN.exec(s)
  if (!m || ASCII.test(m[1]!)) return s
  const ascii = domainToASCII(m[1]!)
  if (ascii === '') {
    throw new AppError('validation_failed', `${path}: ${NOT_IDN}`, {
      errors: [{ path, message: NOT_IDN }],
    })
  }
  return `${s.slice(0, m.index)}@${ascii}${m[2]}`
}
