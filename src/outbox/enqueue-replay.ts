// Whether a row holds what an enqueue request asks for: a replay under its Idempotency-Key, or another request.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

interface EnqueueInput {
  message: unknown
  options: Record<string, unknown>
}

/**
 * Compares the row with the request as enqueue_email would have stored it: the message through
 * mailer.normalize_message (so `"a@b.c"` and `["a@b.c"]` are one request), and the options whose
 * columns never change after the insert. sendAt is not compared: the row's send_at moves with its
 * backoffs and retries, and a faithful replay must still find its row. A row without a stored
 * message (a template trigger's) holds no request of the API's: never alike.
 */
export async function enqueuedAlike(
  db: Kysely<Database>,
  id: string,
  input: EnqueueInput,
): Promise<boolean> {
  const o = JSON.stringify(input.options)
  const r = await sql<{ alike: boolean | null }>`
    select message = mailer.normalize_message(${JSON.stringify(input.message)}::jsonb)
       and priority = coalesce((${o}::jsonb ->> 'priority')::smallint, 0)
       and expires_at is not distinct from (${o}::jsonb ->> 'expiresAt')::timestamptz
       and max_attempts is not distinct from (${o}::jsonb ->> 'maxAttempts')::integer
       and correlation_id is not distinct from ${o}::jsonb ->> 'correlationId' as alike
      from mailer.email_outbox where id = ${id}::bigint
  `.execute(db)
  return r.rows[0]?.alike === true
}
