// Enqueue through mailer.enqueue_email, so the API validates exactly as SQL callers do.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { AppError } from '../errors.ts'

interface EnqueueInput {
  /** Passed to Postgres untouched: mailer.normalize_message is the one validator. */
  message: unknown
  options: Record<string, unknown>
}

interface EnqueueResult {
  id: string
  /** False when the (tenant, dedupeKey) pair already named a row: that row's id is returned. */
  created: boolean
}

/**
 * mailer.invalid's "mailer: <field> <problem>", each problem opening with one of these words: a
 * field may hold a space (a header name, an unknown key). The field becomes a path as the request
 * schema spells one (message.to[1] → message.to.1), so a client reads both alike.
 */
const SQL_PROBLEM = /^mailer: (.+?) ((?:is|must|may|has|or) .+)$/s

/**
 * A problem as it reads after its path: "X or Y is required" names X and reads on from "or", which
 * after the path alone ("message.text: or message.html is required") is no sentence.
 */
function afterPath(problem: string): string {
  const either = /^or (.+) is required$/s.exec(problem)
  return either ? `is required, or ${either[1]}` : problem
}

/**
 * One transaction, two statements. The second tells "inserted now" from "already there" by comparing
 * the row's xmin with this transaction's id: race-safe, because a concurrent insert of the same key
 * makes `on conflict` wait for it, and a row another transaction committed never carries our xid.
 * The statement-level trigger has already queued the NOTIFY; it is delivered at commit.
 */
export async function enqueueEmail(
  db: Kysely<Database>,
  input: EnqueueInput,
): Promise<EnqueueResult> {
  if (!db.isTransaction) return db.transaction().execute((trx) => enqueueEmail(trx, input))
  try {
    const inserted = await sql<{ id: string }>`
      select mailer.enqueue_email(${JSON.stringify(input.message)}::jsonb, ${JSON.stringify(input.options)}::jsonb)::text as id
    `.execute(db)
    const id = inserted.rows[0]!.id
    const mine = await sql<{ created: boolean }>`
      select xmin = pg_current_xact_id()::xid as created from mailer.email_outbox where id = ${id}::bigint
    `.execute(db)
    return { id, created: mine.rows[0]?.created === true }
  } catch (e) {
    if ((e as { code?: unknown }).code === '22023') {
      // A lone recipient is named by its field, as the request sent it (sql/0168).
      const m = SQL_PROBLEM.exec((e as Error).message)
      const errors = m
        ? [{ path: m[1]!.replace(/\[(\d+)\]/g, '.$1'), message: afterPath(m[2]!) }]
        : []
      const message = m ? `mailer: ${m[1]} ${m[2]}` : (e as Error).message
      throw new AppError('validation_failed', message, { errors }, { cause: e })
    }
    throw e
  }
}
