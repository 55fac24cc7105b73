// The rows naming no sender that waited for a former MAIL_FROM's pause, brought due once the reclaim finds no live worker sending from it.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { PAUSED_MAILBOXES_NOW } from './paused-now.ts'
import {
  everyRowMadeDue,
  ROWS_MADE_DUE_PER_STATEMENT,
  type RowsMadeDue,
  rowsMadeDue,
} from './rows-made-due.ts'
import { PACED_CODE, PAUSED_CODE, TOKEN_WAIT_CODE } from './settle-item.ts'

export interface FormerRowsAnswer {
  /** Rows brought due. */
  due: number
  /** The worker's own MAIL_FROM stood paused or owed its probe: none was asked, they wait for it. */
  ownHeld: boolean
}

/**
 * Rows naming no sender of their own are MAIL_FROM's (`ownMailbox`, the worker's pause key),
 * whichever address it names now: a row given back to the end of a former MAIL_FROM's pause
 * (sql/0039: its send_at moved there; a typo corrected, the variable changed, the worker restarted)
 * waited out that address's pause, up to 5 minutes for a refusal, an hour for a throttle, while the
 * new address's rows went at once. Asked once the reclaim has cleared a probe no live worker owes
 * (stale-probes.ts: the old release stopped): up to `limit` such rows are due now, and the new
 * address's claim sends them or meets its own pause; the answer wakes the workers. Not while
 * `ownMailbox` stands paused (PAUSED_MAILBOXES_NOW) or owes its probe (sql/0062): the rows wait for
 * it as they are, and `ownHeld` says so (the caller asks again later). A row waits for a mailbox's
 * pause when given back for one uncounted (`mailbox_paused`, or Graph's code with its last
 * attempt `throttled`), not for a pacing turn, a credential (TOKEN_WAIT_CODE: no mailbox's) or a
 * sendAt; one whose interrupted send is still to be looked up (send_started_at kept) is left to
 * that lookup, which asks the mailbox it was sent from. Invariant: only earlier, only pending rows
 * naming no sender, none past its expiresAt (the sweep's to fail), none another transaction holds
 * (it waits out the old pause, as before).
 * email_outbox_pending_error_idx (sql/0173), each row's last attempt by primary key. Returns how
 * many came due, and whether `ownMailbox`'s pause or owed probe held them all.
 */
export async function formerMailFromRowsDue(
  db: Kysely<Database>,
  ownMailbox: string,
  limit = ROWS_MADE_DUE_PER_STATEMENT,
): Promise<FormerRowsAnswer> {
  return answer(await formerRowsStep(db, ownMailbox, limit))
}

/** formerMailFromRowsDue, statement after statement while one brings `limit` due: the total, and the last one's ownHeld. */
export async function everyFormerMailFromRowDue(
  db: Kysely<Database>,
  ownMailbox: string,
  limit = ROWS_MADE_DUE_PER_STATEMENT,
): Promise<FormerRowsAnswer> {
  return answer(await everyRowMadeDue((n) => formerRowsStep(db, ownMailbox, n), limit))
}

/** The rows a former MAIL_FROM's pause held, made due unless `ownMailbox`'s own pause or owed probe holds them all. */
const formerRowsStep = (db: Kysely<Database>, ownMailbox: string, limit: number) =>
  rowsMadeDue(
    db,
    sql`o.last_error_code is not null
         and o.last_error_code <> ${PACED_CODE} and o.last_error_code !~ ${TOKEN_WAIT_CODE}
         and o.sender_key is null and o.send_started_at is null
         and (o.last_error_code = ${PAUSED_CODE}
              or coalesce((select a.outcome = 'throttled' and a.error_code = o.last_error_code
                             from mailer.email_attempts a where a.outbox_id = o.id
                            order by a.id desc limit 1), false))`,
    limit,
    sql`exists (select from (${PAUSED_MAILBOXES_NOW}) p where p.mailbox = ${ownMailbox})
         or exists (select from mailer.mailbox_pacing m
                     where m.mailbox = ${ownMailbox} and m.probe_owed)`,
  )

const answer = ({ due, heldAll }: RowsMadeDue): FormerRowsAnswer => ({ due, ownHeld: heldAll })
