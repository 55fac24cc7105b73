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
 * message (a template trigger's) holds no request of the API's: never alike. A row stored by an
 * older normalize_message (a release before a migration changed it: 0024 folds a subject's tab) is
 * normalized again and compared so: the client's retry of the body it sent then is the same
 * request. Only when the stored message differs, so a replay of an unchanged one pays nothing more.
 * Both without 0086's refusals (normalize_message(m, false), sql/0087): a request taken before them,
 * its headers alike but for case or its header past 256 KB, is still the request its row holds.
 * One row, by email_outbox_pkey.
 */
export async function enqueuedAlike(
  db: Kysely<Database>,
  id: string,
  input: EnqueueInput,
): Promise<boolean> {
  const o = JSON.stringify(input.options)
  const r = await sql<{ alike: boolean | null }>`
    select case when r.message is null then false
                when r.message = n.message then true
                else mailer.normalize_message(r.message, false) = n.message end
       and r.priority = coalesce((${o}::jsonb ->> 'priority')::smallint, 0)
       and r.expires_at is not distinct from (${o}::jsonb ->> 'expiresAt')::timestamptz
       and r.max_attempts is not distinct from (${o}::jsonb ->> 'maxAttempts')::integer
       and r.correlation_id is not distinct from ${o}::jsonb ->> 'correlationId' as alike
      from mailer.email_outbox r,
           (select mailer.normalize_message(${JSON.stringify(input.message)}::jsonb, false) as message) n
     where r.id = ${id}::bigint
  `.execute(db)
  return r.rows[0]?.alike === true
}
