// The row filter shared by listing and bulk actions; the caller's tenant confinement is always applied.
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'

export interface OutboxFilter {
  status?: readonly OutboxStatus[]
  tenant?: string
  createdFrom?: Date
  createdTo?: Date
  sentFrom?: Date
  sentTo?: Date
  dedupeKey?: string
  correlationId?: string
  ids?: readonly string[]
}

/**
 * `scopeTenant` is the caller's confinement (null = every tenant). It is ANDed with the filter's own
 * tenant, so asking for another tenant matches nothing: confinement answers "not found", never "forbidden".
 */
export function matchOutbox(
  eb: ExpressionBuilder<Database, 'mailer.email_outbox'>,
  f: OutboxFilter,
  scopeTenant: string | null,
): Expression<SqlBool> {
  const where: Expression<SqlBool>[] = []
  if (scopeTenant !== null) where.push(eb('tenant', '=', scopeTenant))
  if (f.tenant !== undefined) where.push(eb('tenant', '=', f.tenant))
  if (f.status !== undefined) {
    where.push(f.status.length === 0 ? eb.lit(false) : eb('status', 'in', [...f.status]))
  }
  // `as never`: schema.ts types created_at as Generated<Timestamp>, which this Kysely version compares
  // as the ColumnType object rather than a Date; the values are plain Dates bound as parameters.
  // Ranges are half-open [from, to): adjacent windows never count a row twice.
  if (f.createdFrom) where.push(eb('created_at', '>=', f.createdFrom as never))
  if (f.createdTo) where.push(eb('created_at', '<', f.createdTo as never))
  if (f.sentFrom) where.push(eb('sent_at', '>=', f.sentFrom as never))
  if (f.sentTo) where.push(eb('sent_at', '<', f.sentTo as never))
  if (f.dedupeKey !== undefined) where.push(eb('dedupe_key', '=', f.dedupeKey))
  if (f.correlationId !== undefined) where.push(eb('correlation_id', '=', f.correlationId))
  if (f.ids !== undefined) {
    where.push(f.ids.length === 0 ? eb.lit(false) : eb('id', 'in', [...f.ids]))
  }
  return eb.and(where)
}
