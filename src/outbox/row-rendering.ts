// What one row's worker would send now, for its inspection: the sender's renderer over the row as stored and its template as it stands, or why it cannot.
import type { Kysely } from 'kysely'
import type { Database, TemplateRow } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { OutboxRecord } from './outbox-view.ts'
import { renderLease } from './render.ts'
import { afterInterruptedSend } from './render-error.ts'
import { type RenderFailure, renderFailure } from './render-failure.ts'
import type { OutboundMail } from './sender.ts'

export type RowRendering =
  | { mail: OutboundMail; error: null }
  | { mail: null; error: RenderFailure }

/** What the row's worker renders it with: its process's MAIL_FROM and MAIL_FROM_ALLOWED. */
export interface RenderSettings {
  mailFrom: string | null
  allowedSenders: ReadonlySet<string> | null
}

/**
 * renderLease, the one renderer a worker sends through, over `row` as read (findOutboxRow) with
 * `templates` (loadTemplates of its template, read with it): a template's row renders from the
 * template as it stands now, so a row sent before an edit sent what the template then said. It
 * fails as deliver.ts fails the row (renderFailure: a refused address asks the database for its
 * words, outside the read's transaction: its refusal is an error, which would abort it), in its
 * words: a row keeping an interrupted send's mark says that send may have delivered it, not "not
 * sent" (afterInterruptedSend), as its next claim (ambiguous) will.
 */
export async function renderRow(
  d: { db: Kysely<Database>; dbName: string; log: Logger },
  row: OutboxRecord,
  templates: ReadonlyMap<string, TemplateRow>,
  settings: RenderSettings,
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
  try {
    return {
      mail: renderLease(renderable, templates, settings.mailFrom, settings.allowedSenders),
      error: null,
    }
  } catch (e) {
    const { code, message } = await renderFailure(d, e, row.id)
    return {
      mail: null,
      error: { code, message: keepsMark(row) ? afterInterruptedSend(message) : message },
    }
  }
}

/**
 * The row keeps an interrupted send's mark, which its next claim reads as `ambiguous`: a pending,
 * failed or cancelled row holds send_started_at only so (a settlement clears it otherwise). A
 * claimed one's may be its own send's start: its worker has rendered it already.
 */
const keepsMark = (row: OutboxRecord) =>
  row.sendStartedAt !== null && row.status !== 'sending' && row.status !== 'sent'
