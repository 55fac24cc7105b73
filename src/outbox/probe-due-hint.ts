// What an API statement moving rows of MAIL_FROM's writes for the owed probe (sql/0062, 0075): a due hint for rows moved sooner, a wake for rows cancelled.
import { type RawBuilder, sql } from 'kysely'

// A row of MAIL_FROM's (no sender key), pending or cancelled just now, scheduled ahead, while a probe
// is owed (mailbox_pacing_probe_owed_idx, empty otherwise): 0075's insert trigger's WHEN and test.
const probeWaitsFor = (m: string) =>
  sql`${sql.ref(`${m}.sender_key`)} is null and ${sql.ref(`${m}.send_at`)} > now()
      and exists (select from mailer.mailbox_pacing p where p.probe_owed)`

/**
 * A CTE's body: the earliest future send_at among `moved`'s pending rows (a CTE of the same
 * statement, the rows as it left them) that the owed probe waits for, as one hint. 0075's insert
 * trigger writes it for an enqueue; a row moved sooner by an UPDATE has no trigger (an AFTER UPDATE
 * row trigger costs every claim and settlement a heap page per row, round 39), so the statement that
 * moves it writes it: it commits with the row, and a waiting claim reads the kept due time lowered
 * by it.
 */
export function probeDueHint(moved: string): RawBuilder<Record<string, unknown>> {
  // In parentheses: Kysely writes a raw CTE body as given.
  return sql`(insert into mailer.probe_due_hints (send_at)
              select min(m.send_at) from ${sql.table(moved)} m
               where m.status = 'pending' and ${probeWaitsFor('m')}
              having min(m.send_at) is not null)`
}

/**
 * A select-list column of a statement over `cancelled` (its rows as the cancel left them): wakes
 * every listening worker at commit when one is a future row of MAIL_FROM's cancelled while a probe
 * is owed. A worker waits for the kept row's time (mailbox_pacing.probe_due_at); that row cancelled,
 * its claim must search again, else the probe stays owed, every worker's claim going past it, until
 * that time or the poll. One notification per transaction (Postgres folds repeats); the
 * value is read for its effect only.
 */
export function wakeForCancelledProbeRow(cancelled: string): RawBuilder<boolean | null> {
  return sql<
    boolean | null
  >`case when ${sql.ref(`${cancelled}.status`)} = 'cancelled' and ${probeWaitsFor(cancelled)}
                                  then pg_notify('mailer_outbox', '') is null end`
}
