// When a mailbox's owed probe, out, surely ends (or how long a row the owed end brings due waits while none is out): how long a row that may not pass it goes back for (sql/0092 brings it due sooner), and that row due if the probe ended meanwhile.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * While `mailbox`'s probe is owed (owed-probe.ts), for a row the owed state's end brings due (one
 * naming `mailbox`, sql/0092, its owner free to take it as the probe while none is out, sql/0133;
 * or, `noted`, an interrupted send's lookup row, sql/0116): ms until that probe, out (its row
 * sending), surely ends, answered or given up: its send deadline (sql/0078; null from an older
 * binary) or its lease's end, the later; while none is out, `noneOut.ms`. Null for any other row
 * (MAIL_FROM's own, no sender key: the end neither brings it due nor is it taken as the probe while
 * held, and no claim takes it while the probe is owed, sql/0062) and while none is owed. A row
 * given back past an owed probe waits that long, not 1 s: the owed state's end brings it due at
 * once. Invariant: no later than a second before row `rowId`'s expiresAt, or the give-back itself
 * would fail it as expired (settle_verdict) though the probe's answer may come long before; past
 * it (a lease claimed only to look its interrupted send up, whose wait may run past the expiresAt,
 * bounded where it settles), uncapped: capped there, it went back for a second at a time. Asked
 * only by a row found owed (never where no probe is owed); mailbox_pacing and email_outbox by
 * primary key.
 */
export async function owedProbeEndsInMs(
  db: Kysely<Database>,
  mailbox: string,
  rowId: string,
  noneOut: { ms: number; noted: boolean },
): Promise<number | null> {
  const { rows } = await sql<{ ms: number }>`
    select greatest(0, extract(epoch from least(e.ends, case when r.expires_at > now() then r.expires_at - interval '1 second' end) - now()) * 1000)::float8 as ms
      from mailer.mailbox_pacing m
      left join mailer.email_outbox o on o.id = m.probe_id and o.status = 'sending'
      left join mailer.email_outbox r on r.id = ${rowId}::bigint
     cross join lateral (
       select case when ${noneOut.noted}::boolean or r.sender_key = m.mailbox
                   then coalesce(greatest(o.send_deadline_at, o.lease_expires_at),
                                 now() + make_interval(secs => ${noneOut.ms}::float8 / 1000)) end as ends) e
     where m.mailbox = ${mailbox} and m.probe_owed and e.ends is not null`.execute(db)
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
