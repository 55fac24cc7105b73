// The owed state's end meeting a worker's move of a row it brings due too: its statement, its snapshot older than the move, locks the moved row without moving it, and its commit wakes the claims that lock made skip the row.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { heldOwedRowsDue } from '../../src/outbox/held-owed-rows.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { claimAsW1 } from '../support/claim-as-w1.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
/** The mailbox whose earlier probe's end left the row noted, and the row's own sender. */
const OLD = 'outbox@example.com'
const NEW = 'outbox-next@example.com'
// The advisory lock the test's row policy waits on: the owed end's statement stops there, its
// snapshot taken. (A function in search_path cannot reach the trigger, which sets its own; a
// table lock held elsewhere stops a function's statement before its snapshot, not after.)
const GATE = 5202
/** A wait's bound: what it waits for is a statement or two (the loop's hold spans a 10 s poll). */
const LATCH_MS = 30_000

/** The ids a worker's claim takes now, as the wake's claim runs it. */
const claimedIds = async () =>
  (await claimAsW1(t.db, { limit: 10, markStarted: false })).map((l) => l.id)

/** The session `pid` waits for the test's GATE (in the policy's gate, its statement's snapshot taken). */
const waitsAtGate = (pid: number) =>
  pollUntil(async () => {
    const r = await t.pool.query(
      `select 1 from pg_locks where pid = $1 and locktype = 'advisory' and not granted`,
      [pid],
    )
    return r.rows.length > 0 ? true : undefined
  })

// Which transaction began first decides the end's recheck of the moved row: against the loop's
// earlier now() the row is due and fails it (locked, not moved, not told of: the case 0165 wakes
// for); against a later one it passes, unseen by the end's snapshot, and the end's later read finds
// it waiting still, so 'owed-rows-held' names it (a wake-up too, as before 0165).
for (const [loopBegan, told] of [
  ['first', 'a plain wake-up'],
  ['after the end', 'owed-rows-held'],
] as const)
  test(`the owed state's end whose statement's snapshot predates a worker's move of a row it brings due too (the loop's transaction began ${loopBegan}) locks the moved row without moving it; a claim then skips the row, and the end's commit wakes the workers: the row is not left for its old time`, async () => {
    // A row of NEW given back for a pause (due in a day), noted for OLD's probe, whose end came
    // earlier and left it locked (an interrupted send's lookup waiting for OLD): a worker's loop
    // brings it due. NEW's own probe is owed: its end brings NEW's rows given back for a pause due.
    const id = await enqueue(
      t,
      { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from: NEW },
      { sendAt: new Date(Date.now() + 86_400_000).toISOString() },
    )
    await t.pool.query(
      `with n as (insert into mailer.owed_probe_lookups (mailbox, outbox_id) values ($2, $1::bigint)),
          p as (insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($3, now(), true))
     update mailer.email_outbox set last_error_code = 'mailbox_paused' where id = $1::bigint`,
      [id, mailboxKey(OLD), mailboxKey(NEW)],
    )
    // A row policy for ENDER alone that waits while the test holds GATE: called for each row the
    // scan reads, after the statement's snapshot (a superuser, the other sessions here, bypasses it).
    // The role that ends the owed state, as a worker's: not a superuser, so the policy applies.
    const ENDER = `owed_ender_${loopBegan === 'first' ? 'a' : 'b'}_${process.pid}`
    await t.createRole(ENDER, 'nologin')
    await t.pool.query(`create schema if not exists test_hooks`)
    await t.pool.query(`create or replace function test_hooks.gate() returns boolean language plpgsql volatile as $$
    begin perform pg_advisory_lock_shared(${GATE}); perform pg_advisory_unlock_shared(${GATE}); return true; end $$`)
    await t.pool.query(`grant usage on schema mailer, test_hooks to ${ENDER};
    grant select, insert, update, delete on all tables in schema mailer to ${ENDER};
    create policy owed_end_gate on mailer.email_outbox to ${ENDER} using (test_hooks.gate());
    alter table mailer.email_outbox enable row level security`)
    const ender = await t.pool.connect()
    const gate = await t.pool.connect()
    const listener = await t.pool.connect()
    const heard: string[] = []
    listener.on('notification', (n) => heard.push(n.payload ?? ''))
    const latches = boundedLatches(LATCH_MS)
    const asked = latches.make('the loop’s ask answered')
    let askedRows: string[] | undefined
    const loopMayCommit = latches.make('the loop’s commit let go by the test')
    try {
      const enderPid = (await ender.query<{ pid: number }>('select pg_backend_pid() as pid'))
        .rows[0]!.pid
      if (loopBegan !== 'first') await ender.query('begin')
      // The worker's loop's ask, as it sends it: it moves the row and wakes the workers at commit;
      // its transaction kept open by the test until the owed end's statement has its snapshot.
      const loop = t.db.connection().execute(async (c) => {
        await sql`begin`.execute(c)
        try {
          askedRows = await heldOwedRowsDue(c)
          asked.resolve()
          await loopMayCommit.wait()
        } finally {
          await sql`commit`.execute(c)
        }
      })
      expect(
        await Promise.race([asked.wait().then(() => askedRows), loop.then(() => 'ended')]),
      ).toEqual([])
      await gate.query('select pg_advisory_lock($1)', [GATE])
      // NEW's owed state ends (as the probe's answer or a stale clear ends it), in a transaction that
      // goes on a moment after (kept open by the test through the claim below); its trigger's update
      // takes its snapshot, the loop's move uncommitted, and stops at the gate before the row.
      if (loopBegan === 'first') await ender.query('begin')
      await ender.query(`set local role ${ENDER}`)
      const ended = ender.query(
        'update mailer.mailbox_pacing set probe_owed = false where mailbox = $1 and probe_owed',
        [mailboxKey(NEW)],
      )
      await waitsAtGate(enderPid)
      // The loop commits: the row is due, the workers are woken (the claim below is that wake's).
      loopMayCommit.resolve()
      await loop
      await gate.query('select pg_advisory_unlock($1)', [GATE])
      // The trigger reaches the row after the move: locked (the moved version), not moved.
      expect((await ended).rowCount).toBe(1)
      const due = await t.pool.query<{ due: boolean }>(
        'select send_at <= now() as due from mailer.email_outbox where id = $1::bigint',
        [id],
      )
      expect(due.rows[0]?.due).toBe(true)
      // The claim the loop's wake brought finds the row due but locked by the owed end: skipped.
      expect(await claimedIds()).toEqual([])
      await listener.query('listen mailer_outbox')
      await ender.query('commit')
      // Woken, a claim takes it now, not at its old due time (a day here; the probe's end in a deploy).
      // Bounded: a miss shows what was heard (nothing).
      await pollUntil(async () => (heard.length > 0 ? true : undefined), 5_000).catch(
        () => undefined,
      )
      expect(heard).toEqual([told === 'owed-rows-held' ? `owed-rows-held ${id}` : ''])
      expect(await claimedIds()).toEqual([id])
    } finally {
      loopMayCommit.resolve()
      await ender.query('rollback').catch(() => undefined)
      ender.release()
      await gate.query('select pg_advisory_unlock_all()')
      gate.release()
      await listener.query('unlisten *')
      listener.release()
      await t.pool.query(`alter table mailer.email_outbox disable row level security;
      drop policy owed_end_gate on mailer.email_outbox; drop owned by ${ENDER}; drop schema test_hooks cascade`)
    }
  })
