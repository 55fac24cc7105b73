// A DBA's audit trigger on mailer.email_outbox refusing a write with the row's recipient in its message, DETAIL and HINT: words no log line or answer may repeat.
import type pg from 'pg'

/** What the trigger's error names: what a line or an answer may say of it instead. */
export const QUOTING_TRIGGER_NAMES = {
  schema: 'mailer',
  table: 'email_outbox',
  constraint: 'audit_hold',
  function: 'mailer.quote_row()',
  routine: 'exec_stmt_raise',
}

/** Refuses each `event` (`update`, `insert`) on a row `when` picks, raising `errcode`. */
export async function refuseQuotingRow(
  pool: pg.Pool,
  o: { event: 'insert' | 'update'; when?: string; errcode?: string },
) {
  await pool.query(`
    create function mailer.quote_row() returns trigger language plpgsql as $$
    begin
      raise exception 'no mail to %', new.message ->> 'to'
        using errcode = '${o.errcode ?? 'P0042'}', detail = 'recipient ' || (new.message ->> 'to'),
              hint = 'ask about ' || (new.message ->> 'to'),
              table = 'email_outbox', schema = 'mailer', constraint = 'audit_hold';
    end $$;
    create trigger quote_row before ${o.event} on mailer.email_outbox
      for each row when (${o.when ?? 'true'}) execute function mailer.quote_row()`)
}

export async function dropQuotingTrigger(pool: pg.Pool) {
  await pool.query(`drop trigger if exists quote_row on mailer.email_outbox;
                    drop function if exists mailer.quote_row()`)
}
