// Which row probes MAIL_FROM's mailbox after its pause when MAIL_FROM's own first row is not due: the rules of the row naming its address (0082) that no other file pinned.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { cancel, claimPastPause, enqueueIn, pacing } from '../support/paused-claim-rows.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'
const OTHER = 'other@example.com'
const claim = () => claimPastPause(t.db, MAIL_FROM)
const ids = (c: { leases: { id: string }[] }) => c.leases.map((l) => l.id)
/** The pause over, its probe owed (or not), MAIL_FROM's only row without a sender key an hour out. */
const pauseOverOwing = async (owed = true) => {
  await enqueueIn(t.pool, 3600, null)
  await pacing(t.pool, MAIL_FROM, -60, null, owed)
}

test('a row naming MAIL_FROM’s address probes only once due: scheduled a minute out it waits, another sender’s due row goes', async () => {
  await enqueueIn(t.pool, 60, MAIL_FROM)
  const other = await enqueueIn(t.pool, -1, OTHER)
  await pauseOverOwing()
  expect(ids(await claim())).toEqual([other])
})

test('of the rows naming MAIL_FROM’s address, the most urgent priority probes, not the one due first', async () => {
  await enqueueIn(t.pool, -2, MAIL_FROM, 5)
  const urgent = await enqueueIn(t.pool, -1, MAIL_FROM, -5)
  await pauseOverOwing()
  expect(ids(await claim())).toEqual([urgent])
})

test('a row naming MAIL_FROM’s address that is no longer pending (cancelled) never probes', async () => {
  await cancel(t.pool, await enqueueIn(t.pool, -2, MAIL_FROM))
  const other = await enqueueIn(t.pool, -1, OTHER)
  await pauseOverOwing()
  expect(ids(await claim())).toEqual([other])
})

test('a row naming MAIL_FROM’s address whose previous attempt began a send probes as ambiguous', async () => {
  const named = await enqueueIn(t.pool, -1, MAIL_FROM)
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now() - interval '1 minute' where id = $1`,
    [named],
  )
  await pauseOverOwing()
  const probe = await claim()
  expect(probe.leases.map((l) => [l.id, l.ambiguous, l.started])).toEqual([[named, true, false]])
})

test('with MAIL_FROM’s due time kept from an earlier claim, a row naming its address that came due since probes, alone', async () => {
  const other = await enqueueIn(t.pool, -1, OTHER)
  await pauseOverOwing()
  const first = await claim()
  expect([ids(first), first.probeInMs! > 3_500_000]).toEqual([[other], true])
  const kept = await t.pool.query(
    'select probe_due_at is not null as kept from mailer.mailbox_pacing where mailbox = $1',
    [MAIL_FROM],
  )
  expect(kept.rows).toEqual([{ kept: true }])
  const named = await enqueueIn(t.pool, -1, MAIL_FROM)
  await enqueueIn(t.pool, -1, OTHER)
  const probe = await claim()
  expect([probe.probeInMs, ids(probe)]).toEqual([null, [named]])
})

test('no probe owed (another worker’s answered), the pause over: a due row naming MAIL_FROM’s address is this claim’s probe, alone and not noted as owed', async () => {
  const named = await enqueueIn(t.pool, -2, MAIL_FROM)
  await enqueueIn(t.pool, -1, OTHER)
  await pauseOverOwing(false)
  const probe = await claim()
  expect([probe.probeInMs, ids(probe)]).toEqual([null, [named]])
  const row = await t.pool.query(
    'select probe_owed, probe_id from mailer.mailbox_pacing where mailbox = $1',
    [MAIL_FROM],
  )
  expect(row.rows).toEqual([{ probe_owed: false, probe_id: null }])
})

test('a due row naming MAIL_FROM’s address that another transaction holds locked (a worker naming it as waiting, a give-back) when the claim looks: the claim asks again within a second, not at MAIL_FROM’s row an hour out, and then probes with it', async () => {
  const named = await enqueueIn(t.pool, -1, MAIL_FROM)
  await pauseOverOwing()
  const held = await holdRowLocked(t.pool, named)
  let skipped: Awaited<ReturnType<typeof claim>>
  try {
    skipped = await claim()
  } finally {
    await held.end('commit')
  }
  expect([ids(skipped), skipped.probeInMs, skipped.nextDueInMs]).toEqual([[], 1000, 1000])
  expect(ids(await claim())).toEqual([named])
})
