// The statements that name waiting rows (waiting-rows.ts): a row committed as a mark begins.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { markWaitingRows } from '../../src/outbox/waiting-rows.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const REFUSED = { code: 'AADSTS700027', message: 'refused' }

const codeOf = async (ids: string[]) =>
  (
    await t.pool.query<{ c: string | null }>(
      'select last_error_code as c from mailer.email_outbox where id = any($1::bigint[]) order by id',
      [ids],
    )
  ).rows.map((r) => r.c)

test('a row committed after a mark’s transaction began, before its snapshot, is named by that mark, not left under the id it returns', async () => {
  await enqueue(t)
  const first = await markWaitingRows(t.db, REFUSED, null)
  // The mark's now() (its transaction's start) comes before the row's send_at; its snapshot sees
  // the row, and the table's highest id it returns is the row's.
  const late = await t.db.transaction().execute(async (trx) => {
    await sql`select now()`.execute(trx)
    const id = await enqueue(t)
    const r = await markWaitingRows(trx, REFUSED, first.topId)
    return { id, top: r.topId }
  })
  expect(late.top).toBe(late.id)
  await markWaitingRows(t.db, REFUSED, late.top)
  expect(await codeOf([late.id])).toEqual(['AADSTS700027'])
})
