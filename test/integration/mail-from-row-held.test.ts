// MAIL_FROM's own due rows (no sender key) held locked by another transaction when the claim past its pause looks: the claim looks again within a second, its probe still owed.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { claimGuarded, claimPastPause, enqueueIn, pacing } from '../support/paused-claim-rows.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'
const claim = () => claimPastPause(t.db, MAIL_FROM)
const ids = (c: { leases: { id: string }[] }) => c.leases.map((l) => l.id)
const owed = async () =>
  (
    await t.pool.query<{ probe_owed: boolean }>(
      'select probe_owed from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
  ).rows[0]?.probe_owed

/** The claim made while `rows` are held locked by another transaction (a worker naming it as waiting, a give-back, an API action). */
async function claimWhileHeld(rows: string | string[]) {
  const held = await holdRowLocked(t.pool, rows)
  try {
    return await claim()
  } finally {
    await held.end('commit')
  }
}

test('MAIL_FROM’s due row held, its next row an hour out: the claim asks again within a second, not in an hour, and then probes with the row', async () => {
  const due = await enqueueIn(t.pool, -1, null)
  await enqueueIn(t.pool, 3600, null)
  await pacing(t.pool, MAIL_FROM, -60, null, true)
  const skipped = await claimWhileHeld(due)
  expect([ids(skipped), skipped.probeInMs, skipped.nextDueInMs]).toEqual([[], 1000, 1000])
  expect(ids(await claim())).toEqual([due])
})

test('MAIL_FROM’s only pending rows due and all held: the probe stays owed and the claim asks again within a second; then another worker’s claim takes none of them, and the first probes, alone', async () => {
  const due = [await enqueueIn(t.pool, -3, null), await enqueueIn(t.pool, -2, null)]
  due.push(await enqueueIn(t.pool, -1, null))
  const other = await enqueueIn(t.pool, -1, 'other@example.com')
  await pacing(t.pool, MAIL_FROM, -60, null, true)
  const skipped = await claimWhileHeld(due)
  expect([ids(skipped), skipped.probeInMs, await owed()]).toEqual([[other], 1000, true])
  // A worker that never met the pause reads it owed (sql/0062): it takes nothing.
  const guarded = await claimGuarded(t.db, MAIL_FROM)
  expect([ids(guarded), guarded.owed]).toEqual([[], true])
  expect(ids(await claim())).toEqual(due.slice(0, 1))
})
