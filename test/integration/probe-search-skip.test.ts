// The owed probe's search for MAIL_FROM's first due row skipped by a claim other senders' rows fill, within a second of the last such search (0103): what it saves, and what waits for it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { useTestDb } from '../support/db.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'
import { claimPastPause, enqueueIn, pacing } from '../support/paused-claim-rows.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'
const OTHER = 'other@example.com'
/** A claim of `limit` rows (one: filled by any other sender's due row). */
const claim = (limit = 1, db: Kysely<Database> = t.db) => claimPastPause(db, MAIL_FROM, limit)
const ids = (c: { leases: { id: string }[] }) => c.leases.map((l) => l.id)
/** Heap pages of the outbox a one-row claim reads (rolled back: the rows stay as they are). */
const claimReads = async () => (await outboxReadsOf(t.db, (trx) => claim(1, trx))).heapPages
/** The last search moved a second back: as if a second had passed since. */
const secondPassed = () =>
  t.pool.query(
    `update mailer.mailbox_pacing set probe_searched_at = probe_searched_at - interval '1 second'
      where mailbox = $1`,
    [MAIL_FROM],
  )
/** `count` due rows of another sender's, enqueued in one statement. */
const otherDue = (count: number) =>
  t.pool.query(
    `select mailer.enqueue_email(jsonb_build_object('from', $1::text, 'to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'x'),
                                 jsonb_build_object('sendAt', now() - interval '1 minute'))
       from generate_series(1, $2::int)`,
    [OTHER, count],
  )
/**
 * The pause over, its probe owed, MAIL_FROM's only row an hour out, `others` due rows of another
 * sender: the first claim searches, keeps the hour and takes one of them.
 */
async function waiting(others = 5) {
  await otherDue(others)
  await enqueueIn(t.pool, 3600, null)
  await pacing(t.pool, MAIL_FROM, -60, null, true)
  const first = await claim()
  expect([first.leases.length, first.probeInMs! > 3_500_000]).toEqual([1, true])
}

test('a claim other senders’ rows fill, within a second of the last search, reads none of the due rows ahead of MAIL_FROM’s; a second on, it searches again', async () => {
  await waiting(1000)
  // The search reads the heap pages of the 1,000 due keyed rows (about 100); a one-row claim and
  // the kept row's checks under 10.
  expect(await claimReads()).toBeLessThan(20)
  await secondPassed()
  expect(await claimReads()).toBeGreaterThan(60)
})

test('a skipped search answers the kept time, as the search does', async () => {
  await waiting()
  const skipped = await claim()
  expect([skipped.leases.length, skipped.probeInMs! > 3_500_000, skipped.nextDueInMs]).toEqual([
    1,
    true,
    null,
  ])
})

test('a row of MAIL_FROM’s locked by another transaction when the search ran, due and not hinted: the search is not counted done (0157), the next claim probes with it', async () => {
  await waiting()
  const due = await enqueueIn(t.pool, -1, null)
  const held = await holdRowLocked(t.pool, due)
  try {
    await secondPassed()
    // The search finds the row due but held: another sender's row goes, a look again in a second.
    const passed = await claim()
    expect([ids(passed).includes(due), passed.probeInMs]).toEqual([false, 1000])
  } finally {
    await held.end('rollback')
  }
  const probe = await claim()
  expect([ids(probe), probe.probeInMs ?? null]).toEqual([[due], null])
})

test('a row of MAIL_FROM’s enqueued due at once within the second: a claim that comes up short searches and probes it', async () => {
  await waiting()
  const due = await enqueueIn(t.pool, -1, null)
  expect(ids(await claim())).not.toContain(due)
  const probe = await claim(10)
  expect([ids(probe), probe.probeInMs ?? null]).toEqual([[due], null])
})

test('a claim that comes up short within the second, none of MAIL_FROM’s due: the rows of other senders it read are claimed once, the kept time answered', async () => {
  await waiting()
  const short = await claim(10)
  expect([short.leases.length, short.probeInMs! > 3_500_000]).toEqual([4, true])
})

test('a hinted row of MAIL_FROM’s come due: a full claim searches at once, whenever the last search ran', async () => {
  await waiting()
  const due = await enqueueIn(t.pool, -1, null)
  // As a row enqueued for later leaves it, once its time has come.
  await t.pool.query(
    `insert into mailer.probe_due_hints (send_at) values (now() - interval '1 second')`,
  )
  expect(ids(await claim())).toEqual([due])
})

test('the kept row itself due: a full claim searches at once, whenever the last search ran', async () => {
  await waiting()
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() - interval '1 second' where sender_key is null`,
  )
  await t.pool.query(
    `update mailer.mailbox_pacing set probe_due_at = now() - interval '1 second' where mailbox = $1`,
    [MAIL_FROM],
  )
  const probe = await claim()
  expect([ids(probe).length, probe.probeInMs ?? null]).toEqual([1, null])
})
