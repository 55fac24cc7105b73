// status' none-sent-for read (none-sent-for.ts) dates the rows given back alike whether it reads their history row by row (few) or their ids' span at once (many), and reads no window with no row pending.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { NONE_SENT_FOR_SECONDS } from '../../src/outbox/none-sent-for.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const noneSentFor = async () =>
  (await sql<{ s: number | null }>`select ${NONE_SENT_FOR_SECONDS} as s`.execute(t.db)).rows[0]!.s

/** `n` rows inserted as `fields` (SQL assignments) say, all created an hour ago; their ids. */
async function rows(n: number, fields: string): Promise<string[]> {
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message)
     select '{"to": "rcpt@example.com", "subject": "Hello", "text": "Hi"}'::jsonb from generate_series(1, $1::int)
     returning id::text as id`,
    [n],
  )
  const ids = rows.map((r) => r.id)
  await t.pool.query(
    `update mailer.email_outbox set created_at = now() - interval '1 hour', ${fields} where id = any($1::bigint[])`,
    [ids],
  )
  return ids
}

/**
 * The newest send 20 minutes ago (a sent row), then `given` rows given back to a throttle's end,
 * each with an entry finished before that send (30 minutes ago) and one since (10 minutes ago), a
 * row a pacing turn gave back and one a named mailbox's pause moved unclaimed (no history: dated
 * now), and an untried row scheduled ahead (waits for nobody). Seconds with none sent: 600, since
 * the oldest entry after the newest send. With `pacedBefore`, a row a pacing turn gave back whose
 * one entry came before the newest send too: dated by its creation, an hour ago, so the newest send
 * dates the wait (1,200 s).
 */
async function givenBack(given: number, pacedBefore = false): Promise<void> {
  await rows(1, `status = 'sent', sent_at = now() - interval '20 minutes'`)
  const ids = await rows(
    given,
    `send_at = now() + interval '1 minute', last_error_code = 'ApplicationThrottled'`,
  )
  if (pacedBefore)
    ids.push(
      ...(await rows(
        1,
        `send_at = now() + interval '1 minute', last_error_code = 'mailbox_paced'`,
      )),
    )
  for (const ago of [30, 10]) {
    if (pacedBefore && ago === 10) ids.pop()
    await t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, finished_at, outcome, error_code)
       select id, $2::int, 'w1', now() - make_interval(mins => $2), now() - make_interval(mins => $2),
              'throttled', 'ApplicationThrottled'
         from unnest($1::bigint[]) id`,
      [ids, ago],
    )
  }
  await rows(1, `send_at = now() + interval '1 minute', last_error_code = 'mailbox_paced'`)
  await rows(
    1,
    `send_at = now() + interval '1 minute', last_error_code = 'mailbox_paused', sender_key = 'a@example.com'`,
  )
  await rows(1, `send_at = now() + interval '1 hour'`)
}

for (const [many, given] of [
  ['a few rows given back (each one’s history read by its key)', 3],
  ['many rows given back (their ids’ span of history read at once)', 60],
] as const) {
  test(`${many} date the wait from their first entry since the newest send: entries before it left out, rows with none dated now`, async () => {
    await givenBack(given)
    expect(Math.round((await noneSentFor())! / 60)).toBe(10)
  })

  test(`${many}, among them a paced row whose history all came before the newest send: that row dated by its creation, the wait by the newest send`, async () => {
    await givenBack(given, true)
    expect(Math.round((await noneSentFor())! / 60)).toBe(20)
  })
}

test('no row pending: null, the window not read (a plan that skips it)', async () => {
  await rows(3, `status = 'sent', sent_at = now() - interval '20 minutes'`)
  expect(await noneSentFor()).toBeNull()
  const q = sql`select ${NONE_SENT_FOR_SECONDS} as s`.compile(t.db)
  const { rows: plan } = await t.pool.query(
    `explain (analyze, costs off, timing off, summary off) ${q.sql}`,
    q.parameters as unknown[],
  )
  // The window's read (however planned: a seq scan on so few rows, the primary key backwards on many).
  const window = plan
    .map((r) => String(r['QUERY PLAN']))
    .filter((l) => / on email_outbox o\b/.test(l))
  expect(window).toEqual([expect.stringContaining('(never executed)')])
})
