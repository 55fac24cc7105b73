// Rows given back for a mailbox's owed probe that sql/0109's trigger found locked as the owed state ended: brought due once free.
import { type Kysely, sql } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'

/**
 * The payload's prefix of sql/0109's notification, followed by the id of a row it left locked
 * (never the mailbox's address: every session listening on the channel hears the payload).
 */
export const OWED_ROWS_HELD = 'owed-rows-held '

// A locked row is asked for again this often: a user's transaction or a claim holds it briefly.
const RETRY_MS = 1_000

/**
 * Brings the rows given back for the owed probe of `rowId`'s mailbox (its sender_key) due now, as
 * sql/0092's trigger does, where no probe of it is owed (anew): those free now, skipping those
 * still locked (never waiting for a user's lock); wakes the workers when any moved. Returns how
 * many stay locked. Invariant: only pending rows given back for a pause (mailbox_paused) move, only
 * earlier; the row by its primary key, the mailbox's rows by email_outbox_sender_key_idx.
 */
export async function heldOwedRowsDue(db: Kysely<Database>, rowId: string): Promise<number> {
  // The rows read below are this statement's snapshot's: those it moved count among them.
  const { rows } = await sql<{ held: number }>`
    with k as materialized (select o.sender_key as mailbox from mailer.email_outbox o where o.id = ${rowId}::bigint),
    due as (
      update mailer.email_outbox o set send_at = now()
       where o.ctid = any(array(
               select c.ctid from mailer.email_outbox c, k
                where c.status = 'pending' and c.sender_key is not null and c.sender_key = k.mailbox
                  and c.send_at > now() and c.last_error_code = 'mailbox_paused'
                  and not exists (select from mailer.mailbox_pacing m where m.mailbox = k.mailbox and m.probe_owed)
                  for update of c skip locked))
         and o.status = 'pending' and o.send_at > now()
      returning 1
    )
    select ((select count(*) from mailer.email_outbox c, k
              where c.status = 'pending' and c.sender_key is not null and c.sender_key = k.mailbox
                and c.send_at > now() and c.last_error_code = 'mailbox_paused'
                and not exists (select from mailer.mailbox_pacing m where m.mailbox = k.mailbox and m.probe_owed))
            - (select count(*) from due))::int as held,
           (select bool_or(pg_notify('mailer_outbox', '') is null) from (select from due limit 1) d) as woken`.execute(
    db,
  )
  return rows[0]?.held ?? 0
}

/**
 * Per row named by sql/0109's notification, one loop at a time: brings its mailbox's held rows
 * due about once a second until none is left locked (their own due time, the probe's end, ends it
 * at the latest; a probe owed anew, or a statement that fails, too). `settled` resolves once every
 * loop has ended after `signal`.
 */
export function createHeldOwedRows(d: {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  signal: AbortSignal
}): { held(rowId: string): void; settled(): Promise<void> } {
  const loops = new Map<string, Promise<void>>()
  async function loop(rowId: string) {
    while (!d.signal.aborted) {
      await d.clock.sleep(RETRY_MS, d.signal)
      if (d.signal.aborted) return
      try {
        if ((await heldOwedRowsDue(d.db, rowId)) === 0) return
      } catch (err) {
        // Not tried again: a database away would have it fail (and warn) every second for as long.
        // The rows come due at their own time, the probe's end, as before sql/0109.
        d.log.warn('bringing due the rows held at an owed probe failed; they wait for its end', {
          err,
        })
        return
      }
    }
  }
  return {
    held(rowId) {
      if (loops.has(rowId) || d.signal.aborted) return
      loops.set(
        rowId,
        loop(rowId).finally(() => loops.delete(rowId)),
      )
    },
    async settled() {
      await Promise.all(loops.values())
    },
  }
}
