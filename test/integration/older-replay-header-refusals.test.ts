// An older binary's replay under an Idempotency-Key (its own comparison, before 0087) of a request 0086 refuses and its row took before: answered, not an error.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

/**
 * The statement a binary built before 0087 (736b62e's enqueue-replay.ts, verbatim) runs when
 * enqueue_email answers a key's existing row: whether the row holds the request. An error here is
 * that binary's 500 (it catches none), where 0086 alone made it a 400 and today's binary a 200.
 */
async function olderAlike(id: string, message: unknown, options: unknown = {}) {
  const o = JSON.stringify(options)
  const r = await t.pool.query<{ alike: boolean | null }>(
    `select case when r.message is null then false
                when r.message = n.message then true
                else mailer.normalize_message(r.message) = n.message end
       and r.priority = coalesce(($1::jsonb ->> 'priority')::smallint, 0)
       and r.expires_at is not distinct from ($1::jsonb ->> 'expiresAt')::timestamptz
       and r.max_attempts is not distinct from ($1::jsonb ->> 'maxAttempts')::integer
       and r.correlation_id is not distinct from $1::jsonb ->> 'correlationId' as alike
      from mailer.email_outbox r,
           (select mailer.normalize_message($2::jsonb) as message) n
     where r.id = $3::bigint`,
    [o, JSON.stringify(message), id],
  )
  return r.rows[0]?.alike === true
}

const message = { to: 'ada@example.com', subject: 'Order 7 shipped', text: 'It is on its way' }

test('a request taken before 0086 (headers alike but for case, a header past 256 KB), replayed by a binary built before 0087: its row for the same request, another request told apart, a new key refused', async () => {
  const caseAlike = { ...message, headers: { 'X-Trace': 'a', 'x-trace': 'b' } }
  const longName = { ...message, to: { address: 'ada@example.com', name: 'n'.repeat(262_144) } }
  const answers = []
  for (const [key, sent, stored] of [
    ['case-alike', caseAlike, { headers: caseAlike.headers }],
    ['long-name', longName, { to: [longName.to] }],
  ] as const) {
    // Stored as enqueue_email stored it before 0086.
    const row = await t.pool.query<{ id: string }>(
      `insert into mailer.email_outbox (tenant, dedupe_key, message)
       values ('default', $1, mailer.normalize_message($2::jsonb) || $3::jsonb) returning id::text`,
      [key, JSON.stringify(message), JSON.stringify(stored)],
    )
    const id = row.rows[0]!.id
    // That binary enqueues first: enqueue_email answers the key's row (0087).
    const replayed = await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email($1::jsonb, $2::jsonb)::text as id`,
      [JSON.stringify(sent), JSON.stringify({ dedupeKey: key })],
    )
    const same = await olderAlike(replayed.rows[0]!.id, sent).catch((e: Error) => e.message)
    const other = await olderAlike(id, { ...sent, text: 'another' }).catch((e: Error) => e.message)
    // A new key is refused by enqueue_email itself, which that binary answers 400.
    const fresh = await t.pool
      .query(`select mailer.enqueue_email($1::jsonb, $2::jsonb)`, [
        JSON.stringify(sent),
        JSON.stringify({ dedupeKey: `${key}-new` }),
      ])
      .then(
        () => null,
        (e: { code?: string }) => e.code,
      )
    answers.push([key, replayed.rows[0]!.id === id, same, other, fresh])
  }
  // The same request is its row's (200 with its id), another one is not (422), as today's binary answers.
  expect(answers).toEqual([
    ['case-alike', true, true, false, '22023'],
    ['long-name', true, true, false, '22023'],
  ])
})

test('mailer.normalize_message(m) still refuses what 0086 refuses but those two, and normalizes as before', async () => {
  const refused = await t.pool
    .query(`select mailer.normalize_message($1::jsonb)`, [JSON.stringify({ ...message, to: [] })])
    .then(
      () => null,
      (e: { code?: string; message: string }) => [e.code, e.message],
    )
  expect(refused).toEqual([
    '22023',
    'mailer: message.to is required: a message needs at least one recipient in to, cc or bcc',
  ])
  const { rows } = await t.pool.query(
    `select mailer.normalize_message($1::jsonb) = mailer.normalize_message($1::jsonb, false) as same`,
    [JSON.stringify({ ...message, headers: { 'X-Trace': 'a' } })],
  )
  expect(rows[0].same).toBe(true)
})
