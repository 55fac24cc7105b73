// What one row's worker would send now, for its inspection: the sender's renderer over the row as stored and its template as it stands, or why it cannot.
import type { Kysely } from 'kysely'
import type { EnvValues } from '../config/env-schema.ts'
import { mailFromProblem } from '../config/sender-mailbox.ts'
import type { Database, TemplateRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { OutboxRecord } from './outbox-view.ts'
import { renderLease, renderMailFromUnknown } from './render.ts'
import { afterInterruptedSend } from './render-error.ts'
import { type RenderFailure, renderFailure } from './render-failure.ts'
import type { MailAddress, OutboundMail } from './sender.ts'
import { type HiddenRecipients, withoutTemplateOwnRecipients } from './template-own-recipients.ts'

/** What the row sends; `from` null where this process cannot tell it (fromNote says why). */
export type InspectedMail = Omit<OutboundMail, 'from'> & { from: MailAddress | null }

export type RowRendering =
  | {
      mail: InspectedMail
      fromNote: string | null
      /** Of a template's row shown to a token confined to a tenant: the template's own, left out. */
      hiddenRecipients: HiddenRecipients | null
      error: null
    }
  | { mail: null; fromNote: null; hiddenRecipients: null; error: RenderFailure }

/** What the row's worker renders it with: its process's MAIL_FROM and MAIL_FROM_ALLOWED. */
export interface RenderSettings {
  mailFrom: string | null
  allowedSenders: ReadonlySet<string> | null
  /**
   * Why this process cannot tell the workers' MAIL_FROM (mailFromUnknownHere), or null: mailFrom
   * is theirs (a process that drains checked it at its start; a row naming no sender fails
   * no_sender without one).
   */
  mailFromUnknown: string | null
}

const CANNOT_TELL =
  "the row names no sender: its worker sends it from the workers' MAIL_FROM, which this process (serve --role api, which sends nothing) cannot tell:"

/**
 * Of a process that sends nothing (serve --role api, whose start asks nothing of MAIL_FROM): why
 * its MAIL_FROM does not say the workers', unset or no address a worker could send from (their
 * start refuses such a one: theirs is another); null when it may be theirs (the deploy guide: keep
 * it so, as Fly's secrets reach every process group).
 */
export function mailFromUnknownHere(
  mailFrom: string | null,
  transport: EnvValues['MAIL_TRANSPORT'],
): string | null {
  if (mailFrom === null) return `${CANNOT_TELL} it has no MAIL_FROM`
  const problem = mailFromProblem(mailFrom, transport)
  return problem === null
    ? null
    : `${CANNOT_TELL} its MAIL_FROM is no address a worker could send from (${problem})`
}

/**
 * renderLease, the one renderer a worker sends through, over `row` as read with `templates` (its
 * template, in the row's statement: findOutboxRowWithTemplate): a template's row renders from the
 * template as it stands now, so a row sent before an edit sent what the template then said. It
 * fails as deliver.ts fails the row (renderFailure: a refused address asks the database for its
 * words, outside the read's transaction: its refusal is an error, which would abort it), in its
 * words: a row keeping an interrupted send's mark says that send may have delivered it, not "not
 * sent" (afterInterruptedSend), as its next claim (ambiguous) will. Where the workers' MAIL_FROM
 * is unknown here, a row naming no sender renders all but its sender: not a failure (no_sender,
 * or an unusable MAIL_FROM's words) its worker would not meet. Shown to a token confined to a
 * tenant, a template's row leaves out the recipients its template names itself, counted
 * (withoutTemplateOwnRecipients): its rendering, and so its renderError, is the worker's.
 */
export async function renderRow(
  d: { db: Kysely<Database>; dbName: string; log: Logger },
  row: OutboxRecord,
  templates: ReadonlyMap<string, TemplateRow>,
  settings: RenderSettings,
  /** The reader is a token confined to a tenant: a template's own recipients are not its to see. */
  confinedToTenant = false,
): Promise<RowRendering> {
  const renderable = {
    id: row.id,
    tenant: row.tenant,
    attempt: row.attempts,
    correlationId: row.correlationId,
    message: row.message,
    template: row.template,
    sourceRow: row.sourceRow as Record<string, unknown> | null,
  }
  let rendered: { mail: InspectedMail; fromNote: string | null }
  try {
    if (settings.mailFromUnknown === null) {
      const mail = renderLease(renderable, templates, settings.mailFrom, settings.allowedSenders)
      rendered = { mail, fromNote: null }
    } else {
      const mail = renderMailFromUnknown(renderable, templates, settings.allowedSenders)
      rendered = { mail, fromNote: mail.from === null ? settings.mailFromUnknown : null }
    }
  } catch (e) {
    const { code, message } = await renderFailure(d, e, row.id)
    return {
      mail: null,
      fromNote: null,
      hiddenRecipients: null,
      error: { code, message: keepsMark(row) ? afterInterruptedSend(message) : message },
    }
  }
  // It rendered: a template's row has its template.
  const template = row.template === null ? undefined : templates.get(row.template)
  if (!confinedToTenant || !template) return { ...rendered, hiddenRecipients: null, error: null }
  const { mail, hidden } = withoutTemplateOwnRecipients(
    rendered.mail,
    template,
    renderable.sourceRow ?? {},
  )
  return { mail, fromNote: rendered.fromNote, hiddenRecipients: hidden, error: null }
}

/**
 * The row keeps an interrupted send's mark, which its next claim reads as `ambiguous`: a pending,
 * failed or cancelled row holds send_started_at only so (a settlement clears it otherwise). A
 * claimed one's may be its own send's start: its worker has rendered it already.
 */
const keepsMark = (row: OutboxRecord) =>
  row.sendStartedAt !== null && row.status !== 'sending' && row.status !== 'sent'
