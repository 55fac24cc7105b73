// When a mailbox's owed probe, out, surely ends (or how long a row waits while none is out): how long a row that may not pass it goes back for (sql/0092 brings it due sooner), and that row due if the probe ended meanwhile.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * While `mailbox`'s probe is owed (owed-probe.ts): ms until that probe, out (its row sending), surely
 * ends, answered or given up: its send deadline (sql/0078; null from an older binary) or its lease's
 * end, the later; while none is out, `noneOutMs`. Null while none is owed. A row given back past an
 * owed probe waits that long, not 1 s: the owed state's end brings it due at once (sql/0092), and
 * while none is out its owner may take it as the probe all the same (sql/0133). Invariant: no later
 * than a second before row `rowId`'s expiresAt, or the give-back itself would fail it as expired
 * (settle_verdict) though the probe's answer may come long before. Asked only by a row found owed
 * (never where no probe is owed); mailbox_pacing and email_outbox by primary key.
 */
export async function owedProbeEndsInMs(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
  noneOutMs: number,
): Promise<number | null> {
  const { rows } = await sql<{ ms: number }>`
    select greatest(0, extract(epoch from least(coalesce(greatest(o.send_deadline_at, o.lease_expires_at),
                                                         now() + make_interval(secs => ${noneOutMs}::float8 / 1000)),
                                                (select r.expires_at - interval '1 second' from mailer.email_outbox r
                                                  where r.id = ${rowId}::bigint)) - now()) * 1000)::float8 as ms
      from mailer.mailbox_pacing m left join mailer.email_outbox o on o.id = m.probe_id and o.status = 'sending'
     where m.mailbox = ${mailbox} and m.probe_owed`.execute(db)
  return rows[0]?.ms ?? null
}

/**
 * Row `rowId`, just given back past `mailbox`'s owed probe (owedProbeEndsInMs), comes due now and the
 * workers are woken when that probe is owed no more: its end committed between the gate's read and
 * the give-back, where sql/0092's trigger found the row still sending (or locked). Invariant: as
 * 0092's, only a pending row given back for a pause (mailbox_paused) moves, only earlier; a probe
 * owed anew keeps it for that one's end. email_outbox and mailbox_pacing by primary key.
 */
export async function owedRowDueIfProbeEnded(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
): Promise<void> {
  await sql`with due as (
      update mailer.email_outbox o set send_at = now()
       where o.id = ${rowId}::bigint and o.status = 'pending' and o.send_at > now()
         and o.last_error_code = 'mailbox_paused'
         and not exists (select from mailer.mailbox_pacing m where m.mailbox = ${mailbox} and m.probe_owed)
      returning 1)
    select pg_notify('mailer_outbox', '') from due`.execute(db)
}
