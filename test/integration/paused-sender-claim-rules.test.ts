// The rules of claim_past_paused that no other file pinned: other mailboxes' pauses and turns, priorities past the first, the limit, the look-ahead, the owed wait's rows and hints, the probe's row.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { useTestDb } from '../support/db.ts'
import {
  cancel as cancelRow,
  enqueueIn as enqueueRow,
  pacing as pacingRow,
} from '../support/paused-claim-rows.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'
const HOLD_MS = 5_000
const claim = (limit = 10) =>
  claimBatch(t.db, {
    limit,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: false,
    pausedSender: { key: MAIL_FROM, holdMs: HOLD_MS },
  })

const enqueueIn = (inSeconds: number, from: string | null, priority = 0) =>
  enqueueRow(t.pool, inSeconds, from, priority)
const pacing = (mailbox: string, inSeconds: number, turnSeconds: number | null, owed = false) =>
  pacingRow(t.pool, mailbox, inSeconds, turnSeconds, owed)
const cancel = (id: string) => cancelRow(t.pool, id)

test('while it stands, a row of another mailbox paused past the hold waits; one whose next pacing turn is all that stands is claimed', async () => {
  await enqueueIn(-1, 'paused@example.com')
  const paced = await enqueueIn(-1, 'paced@example.com')
  const other = await enqueueIn(-1, 'other@example.com')
  await pacing(MAIL_FROM, 60, null)
  await pacing('paused@example.com', 60, null)
  // 20 s ahead, past the hold, within its 30 s turn: a turn, no pause.
  await pacing('paced@example.com', 20, 30)
  const c = await claim()
  expect(c.pausedMs).toBeGreaterThan(HOLD_MS)
  expect(c.leases.map((l) => l.id)).toEqual([paced, other])
})

test('while its probe waits for MAIL_FROM’s row, a due row naming MAIL_FROM’s address probes, alone and named; while it is out, another naming the address waits, another sender’s goes', async () => {
  await enqueueIn(3600, null)
  const named = await enqueueIn(-2, MAIL_FROM)
  await enqueueIn(-1, MAIL_FROM)
  const other = await enqueueIn(-1, 'other@example.com')
  await pacing(MAIL_FROM, -60, null, true)
  const probe = await claim()
  expect([probe.probeInMs, probe.leases.map((l) => l.id)]).toEqual([null, [named]])
  const out = await claim()
  expect([out.probeInMs, out.leases.map((l) => l.id)]).toEqual([1000, [other]])
  const row = await t.pool.query(
    'select probe_owed, probe_id::text from mailer.mailbox_pacing where mailbox = $1',
    [MAIL_FROM],
  )
  expect(row.rows).toEqual([{ probe_owed: true, probe_id: named }])
})

test('a due row of MAIL_FROM’s without a sender key probes before one naming its address, even one earlier in claim order', async () => {
  await enqueueIn(-2, MAIL_FROM)
  const own = await enqueueIn(-1, null)
  await pacing(MAIL_FROM, -60, null, true)
  expect((await claim()).leases.map((l) => l.id)).toEqual([own])
})

test('standing, the rows of every priority are claimed in claim order, no more than the limit', async () => {
  const low = await enqueueIn(-1, 'a@example.com', 5)
  await enqueueIn(-1, 'b@example.com', 5)
  const high = await enqueueIn(-1, 'c@example.com', -5)
  await pacing(MAIL_FROM, 60, null)
  const c = await claim(2)
  expect(c.leases.map((l) => l.id)).toEqual([high, low])
})

test('standing, a claim that fills its limit says nothing of the next row; one short of it says when that is due', async () => {
  await enqueueIn(-1, 'a@example.com')
  await enqueueIn(-1, 'b@example.com')
  await enqueueIn(60, 'c@example.com')
  await pacing(MAIL_FROM, 600, null)
  const full = await claim(2)
  expect([full.leases.length, full.nextDueInMs]).toEqual([2, null])
  await enqueueIn(-1, 'd@example.com')
  const short = await claim(2)
  expect(short.leases.length).toBe(1)
  expect(short.nextDueInMs).toBeGreaterThan(50_000)
  expect(short.nextDueInMs).toBeLessThanOrEqual(60_000)
})

test('MAIL_FROM’s only row at a priority other senders’ rows come before is waited for, and its kept time read without a search (the pacing row not written again)', async () => {
  await enqueueIn(600, 'other@example.com', -5)
  await enqueueIn(3600, null, 5)
  await pacing(MAIL_FROM, -60, null, true)
  const first = await claim()
  expect(first.probeInMs).toBeGreaterThan(3_500_000)
  const version = () =>
    t.pool.query(
      'select xmin::text as v, probe_due_at from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
  const kept = (await version()).rows
  const second = await claim()
  expect(second.probeInMs).toBeGreaterThan(3_500_000)
  expect((await version()).rows).toEqual(kept)
})

test('the hints of a wait that ended (nothing of MAIL_FROM’s pending) are not read by the next wait', async () => {
  await pacing(MAIL_FROM, -60, null, true)
  // Enqueued while owed: its hint is written with it; cancelled, nothing of MAIL_FROM's is pending.
  await cancel(await enqueueIn(600, null))
  expect((await claim()).probeInMs).toBeNull()
  // A new pause's probe owed, MAIL_FROM's row an hour out.
  await pacing(MAIL_FROM, -60, null, true)
  await enqueueIn(3600, null)
  const c = await claim()
  expect(c.probeInMs).toBeGreaterThan(3_500_000)
})

test('a row whose previous attempt began a send is claimed as ambiguous, standing and as the probe', async () => {
  const keyed = await enqueueIn(-1, 'other@example.com')
  const own = await enqueueIn(-1, null)
  await t.pool.query(`update mailer.email_outbox set send_started_at = now() - interval '1 minute'`)
  await pacing(MAIL_FROM, 60, null)
  const standing = await claim()
  expect(standing.leases.map((l) => [l.id, l.ambiguous, l.started])).toEqual([[keyed, true, false]])
  await pacing(MAIL_FROM, -60, null, true)
  const probe = await claim()
  expect(probe.leases.map((l) => [l.id, l.ambiguous, l.started])).toEqual([[own, true, false]])
})

test('the probe is MAIL_FROM’s first due row in claim order, the most urgent priority first', async () => {
  await enqueueIn(-60, null, 0)
  const urgent = await enqueueIn(-1, null, -5)
  await pacing(MAIL_FROM, -60, null, true)
  const c = await claim()
  expect(c.leases.map((l) => l.id)).toEqual([urgent])
})

test('while another claim’s probe is out, MAIL_FROM’s due rows wait and the claim looks again in a second', async () => {
  const first = await enqueueIn(-2, null)
  await enqueueIn(-1, null)
  await pacing(MAIL_FROM, -60, null, true)
  expect((await claim()).leases.map((l) => l.id)).toEqual([first])
  const c = await claim()
  expect([c.probeInMs, c.leases]).toEqual([1000, []])
})

test('owed with nothing of MAIL_FROM’s pending: owed no more, and the claim takes one row, as after a pause', async () => {
  await enqueueIn(-3, 'a@example.com')
  await enqueueIn(-2, 'b@example.com')
  await pacing(MAIL_FROM, -60, null, true)
  const c = await claim()
  expect([c.probeInMs, c.leases.length]).toEqual([null, 1])
  const owed = await t.pool.query(
    'select probe_owed from mailer.mailbox_pacing where mailbox = $1',
    [MAIL_FROM],
  )
  expect(owed.rows).toEqual([{ probe_owed: false }])
})
