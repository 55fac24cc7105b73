// Waits for a mailbox paused for minutes with its probe owed, nothing sending and its workers idle (where the probe tests start from), and for the pause's end to send the rows.
import type { TestDb } from './db.ts'
import type { TestEngine } from './engine.ts'
import { pollUntil } from './events.ts'

/** `mailbox` paused past a minute with its probe owed, no row sending, each worker with nothing in flight. */
export async function pausedOwedAndIdle(
  t: TestDb,
  mailbox: string,
  worker: TestEngine | readonly TestEngine[],
) {
  const workers = Array.isArray(worker) ? worker : [worker]
  await pollUntil(async () => {
    const p = await t.pool.query(
      `select (select count(*)::int from mailer.mailbox_pacing
                where mailbox = $1 and probe_owed and next_at > now() + interval '1 minute') as paused,
              (select count(*)::int from mailer.email_outbox where status = 'sending') as sending`,
      [mailbox],
    )
    return p.rows[0].paused === 1 &&
      p.rows[0].sending === 0 &&
      workers.every((w: TestEngine) => w.drainer.status().inFlight === 0)
      ? true
      : undefined
  }, 30_000)
}

/** Ends `mailbox`'s pause and makes every pending row due now, wakes `workers`, waits for `rows` sent. */
export async function endPauseUntilSent(
  t: TestDb,
  mailbox: string,
  workers: readonly TestEngine[],
  rows: readonly string[],
) {
  await t.pool.query(
    `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
     update mailer.email_outbox set send_at = now() - interval '1 minute' where status = 'pending'`,
    [mailbox],
  )
  for (const w of workers) w.drainer.wake()
  await pollUntil(async () => {
    const r = await t.pool.query(
      `select count(*)::int as n from mailer.email_outbox where id = any($1::bigint[]) and status = 'sent'`,
      [rows],
    )
    return r.rows[0].n === rows.length ? true : undefined
  }, 30_000)
}
