// Steps an interrupted send back in database time, so its lookup grace is out and its row due: what a test of where the send is looked up waits on, not what it asserts.
import type { TestDb } from './db.ts'

/**
 * Row `id`'s interrupted send (its start and its noted deadline) a minute earlier, and the row due
 * now if it waited for later: its next claim looks it up at once, any "not found" meaning "not sent"
 * (lookup-grace.ts counts from the deadline). Past senders (noted_at) and mailbox pacing are left as
 * they are. Throws unless the row holds an interrupted send whose deadline is noted.
 */
export async function ageInterruptedSend(t: TestDb, id: string): Promise<void> {
  const { rowCount } = await t.pool.query(
    `update mailer.email_outbox
        set send_started_at = send_started_at - interval '1 minute',
            send_deadline_at = send_deadline_at - interval '1 minute',
            send_at = least(send_at, now())
      where id = $1 and send_started_at is not null and send_deadline_at > send_started_at`,
    [id],
  )
  if (rowCount !== 1) throw new Error(`row ${id} holds no interrupted send with a noted deadline`)
}
