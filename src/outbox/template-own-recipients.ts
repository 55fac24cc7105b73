// A template's row as a token confined to a tenant is shown it: without the recipients the template names itself, the operator's addresses, counted.
import Mustache from 'mustache'
import type { TemplateRow } from '../db/schema.ts'
import { NO_ADDRESS } from './render-template.ts'
import type { MailAddress } from './sender.ts'
import { fill } from './template-fill.ts'

export interface HiddenRecipients {
  to: number
  cc: number
  bcc: number
}

const FIELDS = [
  ['to', 'to_addresses'],
  ['cc', 'cc_addresses'],
  ['bcc', 'bcc_addresses'],
] as const

// The address of an entry: inside its last <…> when it has one (`{{name}} <{{email}}>`), else all of it.
const ANGLE_ADDRESS = /<([^<>]*)>\s*$/

/**
 * The entry's address is one placeholder's value (`{{email}}`, `{{& email}}`, `Desk <{{email}}>`):
 * a column of the row, which its tenant wrote and is shown (sourceRow). Any other (an address
 * written out, `audit+{{id}}@ops.example`, a section) the template writes itself: the operator's.
 */
function isFilledFromRow(entry: string): boolean {
  const part = (ANGLE_ADDRESS.exec(entry)?.[1] ?? entry).trim()
  try {
    const tokens = Mustache.parse(part) as unknown as [string][]
    return tokens.length === 1 && (tokens[0]![0] === 'name' || tokens[0]![0] === '&')
  } catch {
    return false
  }
}

/**
 * `mail`, rendered from `template` over `view` (renderTemplate: each entry one address, or none
 * when it renders empty, in order), with the recipients its to/cc/bcc_addresses name themselves
 * left out, and how many of each: null when none is. A template is the operator's (the schema's
 * owner writes mailer.templates), its own addresses too: an internal bcc or a team's inbox, which a
 * tenant's client has no business learning. Each entry is filled again as renderTemplate filled it
 * (it rendered: no fill fails), to tell which rendered none.
 */
export function withoutTemplateOwnRecipients<
  M extends { to: MailAddress[]; cc: MailAddress[]; bcc: MailAddress[] },
>(
  mail: M,
  template: TemplateRow,
  view: Record<string, unknown>,
): { mail: M; hidden: HiddenRecipients | null } {
  const shown = { ...mail }
  const hidden: HiddenRecipients = { to: 0, cc: 0, bcc: 0 }
  for (const [key, field] of FIELDS) {
    const fromRow = template[field].flatMap((entry, i) =>
      NO_ADDRESS.test(fill(`${field}[${i}]`, entry, view, false)) ? [] : [isFilledFromRow(entry)],
    )
    // One flag a recipient, as rendered; were they ever not, none of the field is shown.
    const rendered = mail[key]
    const keep = fromRow.length === rendered.length ? fromRow : rendered.map(() => false)
    shown[key] = rendered.filter((_, i) => keep[i])
    hidden[key] = rendered.length - shown[key].length
  }
  return { mail: shown, hidden: hidden.to + hidden.cc + hidden.bcc === 0 ? null : hidden }
}
