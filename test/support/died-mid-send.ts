// An outbox row as a worker that died mid-send leaves it once its lease has ended and its expiresAt has passed: claimable, its send's mark set.
import type { TestDb } from './db.ts'

/** The send started two minutes ago, never to learn its outcome; `attempts` counts it. */
export async function diedMidSendPastExpiry(t: TestDb, id: string): Promise<void> {
  await t.pool.query(
    `update mailer.email_outbox
        set status = 'sending', attempts = 1, lease_owner = 'gone', lease_token = gen_random_uuid(),
            lease_expires_at = now() - interval '1 second', send_started_at = now() - interval '2 minutes',
            expires_at = now()
      where id = $1`,
    [id],
  )
}
