// The highest outbox id an oldest-first page may reach: no transaction still open can commit a lower one.
import { type Kysely, sql } from 'kysely'
import { type Clock, monotonicNow } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import { AppError } from '../errors.ts'

/** How long a page waits for the outbox's writers open at its start before it answers 503. */
export const SETTLE_WAIT_MS = 2_000
const POLL_MS = 5

/**
 * An id comes from the identity sequence when its INSERT runs, and the row is seen only once its
 * transaction commits, maybe after rows with higher ids (an application's transaction that enqueued
 * and went on working). A walk by ascending id past such a row would never list it. Invariant: every
 * transaction holding an id not above the returned horizon has ended. Why it holds: an INSERT takes
 * RowExclusiveLock on email_outbox before it draws an id and keeps it to its end, so a row that was
 * not committed when the highest committed id was read belongs to a transaction holding that lock
 * when the writers are read next; once each has ended, every id up to that highest one is committed
 * or never will be. Waits for writers only (an enqueue, a claim, a settle), never for other work,
 * and on `clock`'s monotonic readings: a step of the wall clock neither cuts the wait nor stretches it.
 */
export async function settledHorizon(
  db: Kysely<Database>,
  clock: Pick<Clock, 'now' | 'monotonic' | 'sleep'>,
): Promise<string | null> {
  const highest = await highestCommittedId(db)
  if (highest === null) return null
  const writers = await openWriters(db)
  const deadline = monotonicNow(clock) + SETTLE_WAIT_MS
  while (writers.length > 0 && (await writersStillOpen(db, writers)) > 0) {
    if (monotonicNow(clock) > deadline) {
      throw new AppError(
        'database_unavailable',
        `an oldest-first page waits for the transactions writing outbox rows when it starts to end (one may still commit a row with a lower id than rows already committed, which the page would pass); one has stayed open longer than ${SETTLE_WAIT_MS} ms: try again, or list newest first`,
        { retryAfterSeconds: 1 },
      )
    }
    await clock.sleep(POLL_MS)
  }
  return highest
}

/** The highest id committed now (email_outbox_pkey, read backwards: one entry). */
async function highestCommittedId(db: Kysely<Database>): Promise<string | null> {
  const r = await sql<{
    id: string | null
  }>`select max(id)::text as id from mailer.email_outbox`.execute(db)
  return r.rows[0]?.id ?? null
}

/**
 * The transactions (other than this one) holding this database's email_outbox's RowExclusiveLock
 * now: a lock table read, no row. pg_locks is the server's, and a relation's oid is unique only
 * within its database (one cloned from the same template has the same): without `database`, another
 * database's enqueue held this page, up to its 503.
 */
async function openWriters(db: Kysely<Database>): Promise<string[]> {
  const r = await sql<{ vxid: string }>`
    select distinct virtualtransaction as vxid from pg_locks
     where locktype = 'relation' and relation = 'mailer.email_outbox'::regclass
       and database = (select oid from pg_database where datname = current_database())
       and mode = 'RowExclusiveLock' and granted and pid is distinct from pg_backend_pid()`.execute(
    db,
  )
  return r.rows.map((w) => w.vxid)
}

/** How many of `writers` still hold the lock (a virtual transaction id is never reused while its session lives). */
async function writersStillOpen(db: Kysely<Database>, writers: string[]): Promise<number> {
  const r = await sql<{ n: number }>`
    select count(*)::int as n from pg_locks
     where locktype = 'relation' and relation = 'mailer.email_outbox'::regclass
       and mode = 'RowExclusiveLock' and virtualtransaction = any(${writers}::text[])`.execute(db)
  return r.rows[0]?.n ?? 0
}
