// A text filter on a column the table bounds (tenant, correlation id): a value longer than any row's can be is refused naming the limit, never answered with an empty page; template's, unbounded as its column is.
import { z } from '@hono/zod-openapi'

/**
 * `what`, optional: 1 to `max` characters, as its column's check holds every row's value and
 * enqueue takes 1 to `max`. Counted as Postgres's char_length and JSON Schema's maxLength count,
 * in code points. Other characters stay allowed: a row written otherwise (a trigger's tenantColumn)
 * may hold them, so such a filter may match.
 */
function boundedFilter(max: number, what: string) {
  return z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const chars = [...value].length
      if (chars <= max) return
      ctx.addIssue({
        code: 'custom',
        message: `must be at most ${max} characters, as every row's ${what} is (enqueue takes 1-${max}): one of ${chars} matches no row`,
      })
    })
    .optional()
    .openapi({ maxLength: max })
}

// email_outbox_tenant_check (sql/0050): a trigger's longer tenantColumn value is stored shortened.
export const TenantFilter = boundedFilter(200, 'tenant')

// email_outbox_correlation_id_check (sql/0038): a trigger row has none.
export const CorrelationIdFilter = boundedFilter(200, 'correlation id')

// email_outbox.template has no check: a trigger names a template (1-100 characters,
// templates_name_check), but a row inserted by hand may name a longer one (failed
// template_not_found at send). Bounded at 100, such a row could not be listed, cancelled or
// retried by its template: any length is taken, as the column takes it.
export const TemplateFilter = z.string().min(1).optional().openapi({
  description:
    'The template a trigger enqueued the row from (any length: a row inserted by hand may name one no template is named)',
})
