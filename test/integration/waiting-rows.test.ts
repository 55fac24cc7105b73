// The statements that name waiting rows (waiting-rows.ts): a pass's bounds and its place, which rows a pause names, a row committed as a mark begins.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import {
  type ClaimPosition,
  markWaitingRowsAbove,
  markWaitingRowsFrom,
  type WaitingCause,
} from '../../src/outbox/waiting-rows.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const REFUSED: WaitingCause = { code: 'AADSTS700027', message: 'refused', mailFromKey: null }
const PAUSED: WaitingCause = {
  code: 'mailbox_paused',
  message: 'not sent: paused',
  mailFromKey: 'sender@example.com',
}

/** `n` rows due in id order (one statement), their ids. */
async function dueRows(n: number): Promise<string[]> {
  const { rows } = await t.pool.query<{ id: string }>(
    `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb)::text as id
       from generate_series(1, $1::int)`,
    [n],
  )
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() - interval '1 hour' + id * interval '1 second'`,
  )
  return rows.map((r) => r.id)
}
const codeOf = async (ids: string[]) =>
  (
    await t.pool.query<{ c: string | null }>(
      'select last_error_code as c from mailer.email_outbox where id = any($1::bigint[]) order by id',
      [ids],
    )
  ).rows.map((r) => r.c)
const versions = async (ids: string[]) =>
  (
    await t.pool.query<{ v: string }>(
      'select xmin::text || ctid::text as v from mailer.email_outbox where id = any($1::bigint[]) order by id',
      [ids],
    )
  ).rows.map((r) => r.v)

test('a pass reads at most its bound a statement, goes on where it stopped, and writes no row that carries the code', async () => {
  const ids = await dueRows(30)
  // Every other row of the first 20 already says it.
  const named = ids.slice(0, 20).filter((_, i) => i % 2 === 0)
  await t.pool.query(
    `update mailer.email_outbox set last_error_code = 'AADSTS700027' where id = any($1::bigint[])`,
    [named],
  )
  const namedBefore = await versions(named)
  const bound = { marked: 4, read: 8 }
  const steps: { marked: number; next: string | null }[] = []
  let at: ClaimPosition | null = null
  do {
    const r = await markWaitingRowsFrom(t.db, REFUSED, at, bound)
    steps.push({ marked: r.marked, next: r.next?.[2] ?? null })
    at = r.next
  } while (at !== null && steps.length < 20)
  // 8 rows read (4 named) a statement: past the 8th row read; past the 4th named once it names 4.
  expect(steps).toEqual([
    { marked: 4, next: ids[7]! },
    { marked: 4, next: ids[15]! },
    { marked: 4, next: ids[21]! },
    { marked: 4, next: ids[25]! },
    { marked: 4, next: ids[29]! },
    { marked: 0, next: null },
  ])
  expect(new Set(await codeOf(ids))).toEqual(new Set(['AADSTS700027']))
  expect(await versions(named)).toEqual(namedBefore)
})

test('a pass reaches a row that became due after it began, ahead of its place', async () => {
  const ids = await dueRows(6)
  const later = (
    await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb,
              jsonb_build_object('sendAt', now() + interval '1 hour'))::text as id`,
    )
  ).rows[0]!.id
  const first = await markWaitingRowsFrom(t.db, REFUSED, null, { marked: 3, read: 3 })
  expect(first.next?.[2]).toBe(ids[2])
  await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [later])
  let at = first.next
  while (at !== null) at = (await markWaitingRowsFrom(t.db, REFUSED, at)).next
  expect(await codeOf([...ids, later])).toEqual(Array(7).fill('AADSTS700027'))
})

test('MAIL_FROM’s pause names its rows (no sender, or its own address) and replaces no code a row’s attempt met; a refused credential names every row', async () => {
  const plain = await enqueue(t)
  const own = await enqueue(t, {
    from: 'Sender@Example.com',
    to: 'rcpt@example.com',
    subject: 'Hello',
    text: 'Hi',
  })
  const other = await enqueue(t, {
    from: 'other@example.com',
    to: 'rcpt@example.com',
    subject: 'Hello',
    text: 'Hi',
  })
  const codes = [
    'AADSTS700027',
    'token_timeout',
    'certificate_expired',
    'mailbox_paced',
    'ErrorInvalidUser',
    'graph_500',
  ]
  const coded: string[] = []
  for (const code of codes) {
    const id = await enqueue(t)
    await t.pool.query('update mailer.email_outbox set last_error_code = $2 where id = $1', [
      id,
      code,
    ])
    coded.push(id)
  }
  await t.pool.query(`update mailer.email_outbox set send_at = now() - interval '1 minute'`)
  const r = await markWaitingRowsFrom(t.db, PAUSED, null)
  expect(r.marked).toBe(6)
  expect(await codeOf([plain, own, other, ...coded])).toEqual([
    'mailbox_paused',
    'mailbox_paused',
    null,
    'mailbox_paused',
    'mailbox_paused',
    'mailbox_paused',
    'mailbox_paused',
    'ErrorInvalidUser',
    'graph_500',
  ])
  // Named once: the next pass and a mark by id write nothing.
  expect((await markWaitingRowsFrom(t.db, PAUSED, null)).marked).toBe(0)
  expect((await markWaitingRowsAbove(t.db, PAUSED, '0')).marked).toBe(0)
  expect((await markWaitingRowsFrom(t.db, REFUSED, null)).marked).toBe(9)
})

test('a row committed after a mark’s transaction began, before its snapshot, is named by that mark, not left under the id it returns', async () => {
  await enqueue(t)
  const first = await markWaitingRowsAbove(t.db, REFUSED, '0')
  // The mark's now() (its transaction's start) comes before the row's send_at; its snapshot sees
  // the row, and the table's highest id it returns is the row's.
  const late = await t.db.transaction().execute(async (trx) => {
    await sql`select now()`.execute(trx)
    const id = await enqueue(t)
    const r = await markWaitingRowsAbove(trx, REFUSED, first.topId)
    return { id, top: r.topId }
  })
  expect(late.top).toBe(late.id)
  await markWaitingRowsAbove(t.db, REFUSED, late.top)
  expect(await codeOf([late.id])).toEqual(['AADSTS700027'])
})
