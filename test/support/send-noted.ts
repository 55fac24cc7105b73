// Waits until a worker's registry entry notes the send of a row (sql/0201), and, asked, until a beat has run since, so a test may move that note back and keep it so.
import type { TestDb } from './db.ts'
import { pollUntil } from './events.ts'

/**
 * Until some entry's last_sent_at reaches row `id`'s sent_at; with `thenABeat`, also until a beat
 * begun after that was seen (last_heartbeat_at past it): a beat built with the same send before the
 * note committed would otherwise write it again after the test moved it back. Each wait within
 * 15 s.
 */
export async function sendNoted(t: TestDb, id: string, thenABeat = false): Promise<void> {
  const seen = await pollUntil(async () => {
    const r = await t.pool.query<{ at: Date }>(
      `select now() as at from mailer.workers w, mailer.email_outbox o
        where o.id = $1 and o.status = 'sent' and w.last_sent_at >= o.sent_at limit 1`,
      [id],
    )
    return r.rows[0]?.at
  }, 15_000)
  if (!thenABeat) return
  await pollUntil(async () => {
    const r = await t.pool.query(
      'select 1 from mailer.workers w where w.last_heartbeat_at > $1 and w.last_sent_at is not null',
      [seen],
    )
    return r.rowCount ? true : undefined
  }, 15_000)
}
