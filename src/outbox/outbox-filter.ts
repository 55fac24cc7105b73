// The row filter shared by listing and bulk actions; the caller's tenant confinement is always applied.
import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'
import { mayHaveBeenDelivered, mayHaveBeenDeliveredRowByRow } from './delivery-possible.ts'

export interface OutboxFilter {
  status?: readonly OutboxStatus[]
  tenant?: string
  /** ISO-8601 with a zone, as given: Postgres reads it to the microsecond (a Date keeps milliseconds). */
  createdFrom?: string
  createdTo?: string
  sentFrom?: string
  sentTo?: string
  dedupeKey?: string
  correlationId?: string
  /** The row's last error code (`throttled`, a Graph code, …): a failed row's cause, a waiting row's reason. */
  lastErrorCode?: string
  /** The template a trigger enqueued the row from (mailer.enqueue_from_row). */
  template?: string
  ids?: readonly string[]
  /** Whether a send may have delivered the row (delivery-possible.ts): false keeps the rows none may have. */
  mayHaveBeenDelivered?: boolean
}

/**
 * `scopeTenant` is the caller's confinement (null = every tenant). It is ANDed with the filter's own
 * tenant, so asking for another tenant matches nothing: confinement answers "not found", never "forbidden".
 */
export function matchOutbox(
  eb: ExpressionBuilder<Database, 'mailer.email_outbox'>,
  f: OutboxFilter,
  scopeTenant: string | null,
  /**
   * How mayHaveBeenDelivered reads the history: `planned` as the planner picks (a bulk action's,
   * over many rows), `rowByRow` a probe of each row read (a list page's, which stops at its limit:
   * delivery-possible.ts).
   */
  probe: 'planned' | 'rowByRow' = 'planned',
): Expression<SqlBool> {
  const where: Expression<SqlBool>[] = []
  if (scopeTenant !== null) where.push(eb('tenant', '=', scopeTenant))
  if (f.tenant !== undefined) where.push(eb('tenant', '=', f.tenant))
  if (f.status !== undefined) {
    where.push(f.status.length === 0 ? eb.lit(false) : eb('status', 'in', [...f.status]))
  }
  // Ranges are half-open [from, to): adjacent windows never count a row twice. A bound is cast by
  // Postgres, so one finer than a millisecond splits the rows of that millisecond as it says.
  const at = (v: string) => sql<Date>`${v}::timestamptz`
  if (f.createdFrom) where.push(eb('created_at', '>=', at(f.createdFrom)))
  if (f.createdTo) where.push(eb('created_at', '<', at(f.createdTo)))
  if (f.sentFrom) where.push(eb('sent_at', '>=', at(f.sentFrom)))
  if (f.sentTo) where.push(eb('sent_at', '<', at(f.sentTo)))
  if (f.dedupeKey !== undefined) where.push(eb('dedupe_key', '=', f.dedupeKey))
  if (f.correlationId !== undefined) where.push(eb('correlation_id', '=', f.correlationId))
  if (f.lastErrorCode !== undefined) where.push(eb('last_error_code', '=', f.lastErrorCode))
  if (f.template !== undefined) where.push(eb('template', '=', f.template))
  if (f.ids !== undefined) {
    where.push(f.ids.length === 0 ? eb.lit(false) : eb('id', 'in', [...f.ids]))
  }
  if (f.mayHaveBeenDelivered !== undefined) {
    const delivered = probe === 'rowByRow' ? mayHaveBeenDeliveredRowByRow : mayHaveBeenDelivered
    where.push(f.mayHaveBeenDelivered ? delivered : eb.not(delivered))
  }
  return eb.and(where)
}
