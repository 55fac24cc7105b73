// The rows a test of claim_past_paused sets up, in database time: outbox rows naming a sender (or MAIL_FROM's), a mailbox's pacing row, a cancel; and its claim.
import type { Kysely } from 'kysely'
import type pg from 'pg'
import type { Database } from '../../src/db/schema.ts'
import { claimBatch } from '../../src/outbox/claim.ts'

/** A claim of up to `limit` rows by a worker that knows `mailFrom`'s pause (its hold 5 s). */
export const claimPastPause = (db: Kysely<Database>, mailFrom: string, limit = 10) =>
  claimBatch(db, {
    limit,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: false,
    pausedSender: { key: mailFrom, holdMs: 5_000 },
  })

/** A claim of up to `limit` rows by a worker that has not met `mailFrom`'s pause: its guard reads it (owed: nothing taken). */
export const claimGuarded = (db: Kysely<Database>, mailFrom: string, holdMs = 5_000, limit = 10) =>
  claimBatch(db, {
    limit,
    workerId: 'w2',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    mailFromGuard: { key: mailFrom, holdMs },
  })

/** A row naming `from` (MAIL_FROM's: none), due `inSeconds` from now in database time, at `priority`. */
export const enqueueIn = async (
  pool: pg.Pool,
  inSeconds: number,
  from: string | null,
  priority = 0,
) =>
  (
    await pool.query<{ id: string }>(
      `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi')
                                     || coalesce(jsonb_build_object('from', $2::text), '{}'),
                                   jsonb_build_object('sendAt', now() + make_interval(secs => $1::float8),
                                                      'priority', $3::int))::text as id`,
      [inSeconds, from, priority],
    )
  ).rows[0]!.id

/** A mailbox's pacing row: its next turn `inSeconds` from now, its turn's interval, its probe owed. */
export const pacing = (
  pool: pg.Pool,
  mailbox: string,
  inSeconds: number,
  turnSeconds: number | null,
  owed = false,
) =>
  pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, probe_owed)
     values ($1, now() + make_interval(secs => $2::float8), make_interval(secs => $3::float8), $4)
     on conflict (mailbox) do update
       set next_at = excluded.next_at, turn_interval = excluded.turn_interval, probe_owed = excluded.probe_owed`,
    [mailbox, inSeconds, turnSeconds, owed],
  )

/** The row cancelled, as the API's cancel of a pending row leaves it. */
export const cancel = (pool: pg.Pool, id: string) =>
  pool.query(
    `update mailer.email_outbox set status = 'cancelled', cancel_requested_at = now() where id = $1`,
    [id],
  )
