// Outbox rows in random states, each with a random history, and mayHaveBeenDelivered read plainly off a row's state: what the property tests of the criterion compare with.
import type { TestDb } from './db.ts'

const STATUSES = ['pending', 'sending', 'sent', 'failed', 'cancelled'] as const
const CODES = [null, 'throttled', 'ambiguous_send', 'graph_rejected'] as const
const HISTORY_CODES = [null, 'throttled', 'ambiguous_send', 'graph_rejected'] as const

export interface RowState {
  id: string
  status: (typeof STATUSES)[number]
  tenant: 'a' | 'b'
  marked: boolean
  code: (typeof CODES)[number]
  history: (typeof HISTORY_CODES)[number][]
}

/** A small seeded generator (mulberry32): a failing round is run again as it was. */
function random(seed: number) {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!

/** The definition (delivery-possible.ts), read plainly off a row's state. */
export const mayHaveBeenDelivered = (s: RowState) =>
  s.status === 'sent' || s.marked || (s.code !== null && s.history.includes('ambiguous_send'))

/** `n` rows of a reset `t` in random states, each with 0–3 history entries of random codes. */
export async function rowsInRandomStates(t: TestDb, seed: number, n: number): Promise<RowState[]> {
  const r = random(seed)
  await t.reset()
  const { rows } = await t.pool.query(
    `select mailer.enqueue_email('{"to":"ada@example.com","subject":"s","text":"t"}'::jsonb,
                                 '{}'::jsonb)::text as id
       from generate_series(1, $1::int)`,
    [n],
  )
  const states: RowState[] = rows.map((row: { id: string }) => ({
    id: row.id,
    status: pick(r, STATUSES),
    tenant: pick(r, ['a', 'b'] as const),
    marked: r() < 0.3,
    code: pick(r, CODES),
    history: Array.from({ length: Math.floor(r() * 4) }, () => pick(r, HISTORY_CODES)),
  }))
  for (const s of states) {
    await t.pool.query(
      `update mailer.email_outbox
          set status = $2, tenant = $3, last_error_code = $4, attempts = 1,
              send_started_at = case when $5 then now() - interval '1 hour' end,
              sent_at = case when $2 = 'sent' then now() end,
              lease_token = case when $2 = 'sending' then gen_random_uuid() end,
              lease_expires_at = case when $2 = 'sending' then now() + interval '1 minute' end,
              cancel_requested_at = case when $2 in ('pending', 'sending') and $6 then now() end
        where id = $1`,
      [s.id, s.status, s.tenant, s.code, s.marked, r() < 0.3],
    )
    for (const [i, code] of s.history.entries())
      await t.pool.query(
        `insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, kind)
         values ($1, $2, 'failed', $3, 'attempt')`,
        [s.id, i + 1, code],
      )
  }
  return states
}
