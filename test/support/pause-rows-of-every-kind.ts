// The mailbox_pacing rows of every kind the shared pause rule (paused-now.ts) tells apart, for the tests that compare its readers.
import { takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { oweProbe } from '../../src/outbox/owed-probe.ts'
import { mailboxKey as k } from '../../src/outbox/send-gate.ts'
import type { TestDb } from './db.ts'

// The longest interval MAILBOX_RATE_PER_MINUTE gives (1). The short pauses last 50 s: longer than a
// test may run (30 s), so none ends while it reads, however loaded the machine.
const INTERVAL_MS = 60_000
const SHORT_MS = 50_000

/**
 * Paused (five): short, turn, long, older-pause, by-hand; not paused: paced, lifted, ended, probe,
 * older-turn (a turn within a rate in force of a minute). The rate in force is the caller's to note.
 */
export async function pauseRowsOfEveryKind(t: TestDb): Promise<void> {
  // Paused: a pause shorter than the interval (turn_interval 0), a throttle within the next turn
  // (throttled_until, sql/0112), a long pause.
  await pauseMailbox(t.db, { mailbox: k('short@example.com'), ms: SHORT_MS })
  await takePacing(t.db, { mailbox: k('turn@example.com'), intervalMs: INTERVAL_MS })
  await pauseMailbox(t.db, { mailbox: k('turn@example.com'), ms: SHORT_MS })
  await pauseMailbox(t.db, { mailbox: k('long@example.com'), ms: 600_000 })
  // Not paused: only paced; a throttle within a turn lifted by hand (next_at set to now()).
  await takePacing(t.db, { mailbox: k('paced@example.com'), intervalMs: INTERVAL_MS })
  await takePacing(t.db, { mailbox: k('lifted@example.com'), intervalMs: INTERVAL_MS })
  await pauseMailbox(t.db, { mailbox: k('lifted@example.com'), ms: SHORT_MS })
  await t.pool.query(`update mailer.mailbox_pacing set next_at = now() where mailbox = $1`, [
    k('lifted@example.com'),
  ])
  // Not paused: a pause just ended, and one ended whose probe is owed (MAIL_FROM's: its rows wait
  // for the probe's answer, code mailbox_paused, but no throttle holds the mailbox).
  for (const m of ['ended@example.com', 'probe@example.com']) {
    await pauseMailbox(t.db, { mailbox: k(m), ms: 5_000 })
    await t.pool.query(
      `update mailer.mailbox_pacing set next_at = now() - interval '1 millisecond',
         throttled_until = now() - interval '1 millisecond' where mailbox = $1`,
      [k(m)],
    )
  }
  await oweProbe(t.db, k('probe@example.com'))
  // An older binary's rows (no turn_interval): a turn within the rate in force, and a pause past it;
  // a pause to 'infinity' set by hand on a paced mailbox (README).
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval) values
       ($1, now() + interval '1 second', null),
       ($2, now() + interval '10 minutes', null),
       ($3, 'infinity', interval '60 seconds')`,
    [k('older-turn@example.com'), k('older-pause@example.com'), k('by-hand@example.com')],
  )
}
