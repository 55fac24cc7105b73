// Waits for a mailbox paused for minutes with its probe owed, nothing sending and a worker idle: where the probe tests start from.
import type { TestDb } from './db.ts'
import type { TestEngine } from './engine.ts'
import { pollUntil } from './events.ts'

/** `mailbox` paused past a minute with its probe owed, no row sending, `worker` with nothing in flight. */
export async function pausedOwedAndIdle(t: TestDb, mailbox: string, worker: TestEngine) {
  await pollUntil(async () => {
    const p = await t.pool.query(
      `select (select count(*)::int from mailer.mailbox_pacing
                where mailbox = $1 and probe_owed and next_at > now() + interval '1 minute') as paused,
              (select count(*)::int from mailer.email_outbox where status = 'sending') as sending`,
      [mailbox],
    )
    return p.rows[0].paused === 1 &&
      p.rows[0].sending === 0 &&
      worker.drainer.status().inFlight === 0
      ? true
      : undefined
  }, 30_000)
}
