// Rows sent back for a pacing turn while a token served, when a refusal then blocks every send: due and named by it, their turns given up; what GET /v1/outbox and status read.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { pendingLastErrors } from '../../src/outbox/pending-last-errors.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { generateTestCertificate } from '../support/fake-graph.ts'
import { type OutageRun, startOutage } from '../support/token-outage.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

/** An expired client secret: the refusal an operator meets when one runs out. */
const EXPIRED = { status: 401, error: 'invalid_client', aadsts: 7000222 }
/** Past a token's use (an hour), as the token source's clock reads it. */
const TOKEN_USED_UP_MS = 2 * 3600_000

const count = async (where: string) =>
  (
    await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox where ${where}`,
    )
  ).rows[0]!.n

/** Mailboxes with turns reserved for rows sent back to wait for them (reservePacing's horizon). */
const reservedTurns = async () =>
  (
    await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.mailbox_pacing where mailbox like 'queue %'`,
    )
  ).rows[0]!.n

test('a refusal that blocks every send gives up the pacing turns reserved before it: their rows are due and named by it, as the rows it met; once fixed they are paced again from then', async () => {
  // One a minute, 10 rows: one sent, the other nine sent back to turns reserved a minute apart.
  const r = await startOutage(t, {
    rows: 10,
    cert: await generateTestCertificate(),
    tokenFault: null,
    ratePerMinute: 1,
    options: () => ({ sendAt: new Date(Date.now() + 3600_000).toISOString() }),
  })
  try {
    await rowsPacedThenRefused(r)
  } finally {
    await r.stop()
  }
})

/** One sent, nine paced; then the cached token's use ends and Entra refuses; then it is fixed. */
async function rowsPacedThenRefused(r: OutageRun) {
  await t.pool.query(`update mailer.email_outbox set send_at = now() - interval '1 hour'`)
  r.engine.drainer.wake()
  await pollUntil(async () => {
    if (r.engine.drainer.status().inFlight > 0) return undefined
    if ((await count(`status = 'sent'`)) < 1) return undefined
    return (await count(`last_error_code = 'mailbox_paced'`)) === 9 ? true : undefined
  }, 30_000)
  expect(await reservedTurns()).toBe(1)

  // The cached token's use ends and Entra refuses the secret: the next row's claim meets it.
  r.clock.advance(TOKEN_USED_UP_MS)
  r.fake.setFaults({ token: Array.from({ length: 100 }, () => EXPIRED) })
  await enqueue(t)
  r.engine.drainer.wake()
  await pollUntil(async () => {
    if (r.fake.tokenRequests.length < 2 || r.engine.drainer.status().inFlight > 0) return undefined
    if (r.transport.blockedForMs() === 0) return undefined
    return (await count(`last_error_code = 'AADSTS7000222'`)) > 0 ? true : undefined
  }, 30_000)
  // Named within a bound, the block's first pass made (read as they stand should it not come).
  await pollUntil(async () =>
    (await count(`last_error_code = 'mailbox_paced'`)) === 0 ? true : undefined,
  ).catch(() => undefined)

  // What GET /v1/outbox shows of each pending row: the refusal's code and words, the nine due, the
  // row the refusal met at the end of its minute; no turn left reserved.
  const rows = await t.pool.query(
    `select last_error_code as code, last_error ~ '^invalid_client: AADSTS7000222' as words,
            send_at <= now() as due, count(*)::int as n
       from mailer.email_outbox where status = 'pending' group by 1, 2, 3 order by 3`,
  )
  expect(rows.rows).toEqual([
    { code: 'AADSTS7000222', words: true, due: false, n: 1 },
    { code: 'AADSTS7000222', words: true, due: true, n: 9 },
  ])
  expect(await reservedTurns()).toBe(0)
  // What status reads: none held back by pacing, every pending row waiting on the refusal's code.
  expect((await liveStats(t.db, null)).heldBackPending).toBe(0)
  expect(await pendingLastErrors(t.db, { limit: 5, scanLimit: 1000 })).toEqual({
    total: 10,
    byCode: [{ code: 'AADSTS7000222', rows: 10 }],
    complete: true,
  })
  expect(r.fake.accepted).toHaveLength(1)

  // Fixed: the next claim's token; its rows take the mailbox's turns again, reserved from now, not
  // after the nine minutes of turns the block left unused; none sent past the rate.
  r.fake.setFaults({})
  r.clock.advance(61_000)
  r.engine.drainer.wake()
  // The claim's nine: one waits in the gate for the mailbox's turn, eight go back to turns.
  await pollUntil(async () =>
    r.engine.drainer.status().inFlight <= 1 &&
    (await count(`status = 'pending' and last_error_code = 'mailbox_paced'`)) >= 8
      ? true
      : undefined,
  )
  const furthest = await t.pool.query(
    `select max(send_at) < now() + interval '11 minutes' as near from mailer.email_outbox
      where status = 'pending' and last_error_code = 'mailbox_paced'`,
  )
  expect(furthest.rows).toEqual([{ near: true }])
  expect(r.fake.tokenRequests.map((x) => x.ok)).toEqual([true, false, true])
  expect(r.fake.accepted.length).toBeLessThanOrEqual(2)
}
