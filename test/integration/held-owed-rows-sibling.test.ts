// Two workers bringing the same held owed row due at once: the one whose statement locked it last, unmoved, wakes the claims its lock made skip the row.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { claimBatch } from '../../src/outbox/claim.ts'
import { heldOwedRowsDue } from '../../src/outbox/held-owed-rows.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const OLD = 'outbox@example.com'
// The advisory lock the test's now() waits on: the sibling's ask stops there, its snapshot taken.
const GATE = 5201

/** The ids a worker's claim takes now, as the wake's claim runs it. */
const claimedIds = async () =>
  (
    await claimBatch(t.db, {
      limit: 10,
      workerId: 'w',
      leaseSeconds: 60,
      defaultMaxAttempts: 5,
      markStarted: false,
    })
  ).leases.map((l) => l.id)

/** A row the owed probe's end left locked: given back (due in a day), noted. */
async function heldOwedRow(): Promise<string> {
  const id = await enqueue(
    t,
    { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from: OLD },
    { sendAt: new Date(Date.now() + 86_400_000).toISOString() },
  )
  await t.pool.query(
    `with n as (insert into mailer.owed_probe_lookups (mailbox, outbox_id) values ($2, $1::bigint))
     update mailer.email_outbox set last_error_code = 'mailbox_paused' where id = $1::bigint`,
    [id, mailboxKey(OLD)],
  )
  return id
}

// Alone; beside a second such row an application keeps locked throughout (the ask after the
// sibling's then finds one row waiting where it found two, not none); and with such a row beginning
// to wait after the sibling's ask (one row waiting where one waited, but another): each wakes.
const SHAPES = {
  alone: '',
  beside: ' (another row still held locked)',
  replaced: ' (another row held locked begins to wait in its place: as many wait as before)',
} as const
for (const shape of Object.keys(SHAPES) as (keyof typeof SHAPES)[])
  test(`a worker's ask whose snapshot predates a sibling's move locks the moved row without moving it; a claim then skips the row, and the ask's next round wakes the workers: the row is not left for its old time${SHAPES[shape]}`, async () => {
    const id = await heldOwedRow()
    // Still waiting when the test ends: its lock is never let go before.
    const heldOther = async () => {
      const otherId = await heldOwedRow()
      return Object.assign(await holdRowLocked(t.pool, otherId, 'update'), { id: otherId })
    }
    let other = shape === 'beside' ? await heldOther() : null
    const others = other ? [other.id] : []
    // now() that waits while the test holds GATE: called in the scan, after the statement's snapshot.
    await t.pool.query(`create schema if not exists test_hooks`)
    await t.pool.query(`create or replace function test_hooks.now() returns timestamptz language plpgsql volatile as $$
    begin perform pg_advisory_lock_shared(${GATE}); perform pg_advisory_unlock_shared(${GATE}); return pg_catalog.now(); end $$`)
    const held = await holdRowLocked(t.pool, id, 'update')
    const gate = await t.pool.connect()
    const listener = await t.pool.connect()
    const heard: string[] = []
    listener.on('notification', (n) => heard.push(n.payload ?? ''))
    let commitSibling!: () => void
    const siblingMayCommit = new Promise<void>((r) => {
      commitSibling = r
    })
    try {
      await gate.query('select pg_advisory_lock($1)', [GATE])
      // The sibling's ask, as a worker's loop sends it; its transaction kept open by the test only to
      // hold the lock its statement took for as long as the claim below takes (a moment, under load).
      const sibling = t.db.connection().execute(async (c) => {
        await sql`begin`.execute(c)
        try {
          await sql`set local search_path = test_hooks, pg_catalog`.execute(c)
          const n = await heldOwedRowsDue(c)
          await siblingMayCommit
          return n
        } finally {
          await sql`commit`.execute(c)
        }
      })
      await pollUntil(async () => {
        const r = await t.pool.query(
          `select 1 from pg_stat_activity where wait_event_type = 'Lock' and wait_event = 'advisory'
            and query like '%owed_probe_lookups%'`,
        )
        return r.rows.length > 0 ? true : undefined
      })
      // The lock ends; the other worker's ask moves the row due and wakes the workers.
      await held.end('commit')
      expect(await heldOwedRowsDue(t.db)).toEqual(others)
      await gate.query('select pg_advisory_unlock($1)', [GATE])
      // The sibling's statement, its snapshot from before the move, saw the row still waiting.
      const siblingHeld = await Promise.race([
        sibling,
        pollUntil(async () => {
          const r = await t.pool.query(
            `select 1 from pg_stat_activity where state = 'idle in transaction' and query like '%owed_probe_lookups%'`,
          )
          return r.rows.length > 0 ? 'statement done' : undefined
        }),
      ])
      expect(siblingHeld).toBe('statement done')
      // The claim the wake brought finds the row due but locked by the sibling's statement: skipped.
      expect(await claimedIds()).toEqual([])
      // Noted as another owed probe's end leaves it locked (its notification, a wake, goes now,
      // while the sibling still holds the moved row: its claims skip that one too).
      if (shape === 'replaced') other = await heldOther()
      await listener.query('listen mailer_outbox')
      commitSibling()
      const siblingFound = await sibling
      expect(siblingFound).toEqual([id, ...others])
      // The sibling's loop asks again a second later (held-owed-rows.ts), the row waiting no more.
      expect(await heldOwedRowsDue(t.db, siblingFound)).toEqual(other ? [other.id] : [])
      // Woken, a claim takes it now, not at its old due time (a day here; the probe's end in a deploy).
      // Bounded: a miss shows what was heard (nothing).
      await pollUntil(async () => (heard.length > 0 ? true : undefined), 5_000).catch(
        () => undefined,
      )
      expect(heard).toEqual([''])
      expect(await claimedIds()).toEqual([id])
      if (other) {
        // A round that finds the same rows waiting wakes nobody (a notification committed before
        // the test's own one is heard before it).
        expect(await heldOwedRowsDue(t.db, [other.id])).toEqual([other.id])
        await t.pool.query(`notify mailer_outbox, 'test-done'`)
        await pollUntil(async () => (heard.includes('test-done') ? true : undefined), 5_000)
        expect(heard).toEqual(['', 'test-done'])
      }
    } finally {
      commitSibling()
      await held.end('rollback')
      await other?.end('rollback')
      await gate.query('select pg_advisory_unlock_all()')
      gate.release()
      await listener.query('unlisten *')
      listener.release()
      await t.pool.query('drop schema test_hooks cascade')
    }
  })
