// Pending rows a wait no longer holds, brought due now: one bounded statement at a time, skip locked, one wake-up each.
import { type Kysely, type RawBuilder, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/** Rows one statement brings due at most: each stays short, and holds few rows locked from the API. */
export const ROWS_MADE_DUE_PER_STATEMENT = 1_000

/** What one rowsMadeDue (or a run of them) did. */
export interface RowsMadeDue {
  /** Rows brought due. */
  due: number
  /** `holdAll` stood (the last statement's): none was asked, they keep their wait. */
  heldAll: boolean
}

/**
 * Up to `limit` pending rows that `held` picks (a condition on the outbox row `o`), due later and
 * not past their expiresAt (the sweep's to fail), are due now, in claim order; the answer wakes the
 * workers (one notification). None when `holdAll` (a condition read once, in the same snapshot)
 * stands. Invariant: only earlier, only pending rows, none another transaction holds (it keeps its
 * wait, as before). `held` names the index its rows are read by.
 */
export async function rowsMadeDue(
  db: Kysely<Database>,
  held: RawBuilder<unknown>,
  limit = ROWS_MADE_DUE_PER_STATEMENT,
  holdAll: RawBuilder<unknown> = sql`false`,
): Promise<RowsMadeDue> {
  const { rows } = await sql<{ due: number; held_all: boolean }>`
    with hold as (
      select (${holdAll}) as held_all
    ), held as (
      select o.id from mailer.email_outbox o
       where not (select held_all from hold)
         and o.status = 'pending' and o.send_at > now()
         and (o.expires_at is null or o.expires_at > now())
         and ${held}
       order by o.priority, o.send_at, o.id
       limit ${limit}
         for update of o skip locked
    ), due as (
      update mailer.email_outbox o set send_at = now()
        from held h
       where o.id = h.id and o.status = 'pending' and o.send_at > now()
      returning 1
    ), woken as (
      select pg_notify('mailer_outbox', '') where exists (select from due)
    )
    select (select count(*) from due)::int as due, (select held_all from hold) as held_all,
           (select count(*) from woken) as woken`.execute(db)
  return { due: rows[0]?.due ?? 0, heldAll: rows[0]?.held_all ?? false }
}

/** `step` (a rowsMadeDue), statement after statement while one brings `limit` due: the total, and the last one's heldAll. */
export async function everyRowMadeDue(
  step: (limit: number) => Promise<RowsMadeDue>,
  limit = ROWS_MADE_DUE_PER_STATEMENT,
): Promise<RowsMadeDue> {
  let total = 0
  for (;;) {
    const { due, heldAll } = await step(limit)
    total += due
    if (due < limit) return { due: total, heldAll }
  }
}
