// Rows waiting for a mailbox's owed probe that another transaction holds locked as the owed state ends: each comes due once free, a lookup's row, in poll mode and under serve too.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { heldOwedRowsDue } from '../../src/outbox/held-owed-rows.ts'
import { owedLookupGiveBack } from '../../src/outbox/owed-give-back.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { serve } from '../../src/serve.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { createEventLog, pollUntil } from '../support/events.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { stillNotDue } from '../support/still-not-due.ts'
import { throughQueries } from '../support/through-queries.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()
/** The mailbox whose probe is owed (the old MAIL_FROM of a rolling deploy), and another sender. */
const OLD = 'outbox@example.com'
const NEW = 'outbox-next@example.com'

/**
 * A row from `from`, as a give-back for an owed probe leaves it: pending, due in a day (the probe's
 * end stands for it), last code mailbox_paused.
 */
async function givenBack(from: string): Promise<string> {
  const id = await enqueue(
    t,
    { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from },
    { sendAt: new Date(Date.now() + 86_400_000).toISOString() },
  )
  await t.pool.query(
    `update mailer.email_outbox set last_error_code = 'mailbox_paused' where id = $1::bigint`,
    [id],
  )
  return id
}

/**
 * OLD's probe owed; a row naming OLD given back for it, and a row of NEW whose interrupted send's
 * lookup waits for it (noted, as owedLookupGiveBack notes it).
 */
async function waitingForOwedProbe(): Promise<{ own: string; lookup: string }> {
  // A live worker of the old release sends from OLD: the reclaim does not clear its probe as stale.
  await t.pool.query(
    `with w as (insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
                values ('old-release:1:abcdef', 'old-release', 1, '0.9.0', $1, 60))
     insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now(), true)`,
    [mailboxKey(OLD)],
  )
  const own = await givenBack(OLD)
  const lookup = await givenBack(NEW)
  await t.pool.query(
    `insert into mailer.owed_probe_lookups (mailbox, outbox_id) values ($1, $2::bigint)`,
    [mailboxKey(OLD), lookup],
  )
  return { own, lookup }
}

/** The rows still noted as waiting for a mailbox's owed probe. */
const notesLeft = async () =>
  (await t.pool.query('select outbox_id::text as id from mailer.owed_probe_lookups')).rows

/** The owed state ends (as the reclaim's stale clear ends it) while `locked` is held locked; then freed. */
async function endedWhileLocked(locked: string[]): Promise<void> {
  const held = await holdRowLocked(t.pool, locked)
  try {
    await t.pool.query(
      'update mailer.mailbox_pacing set probe_owed = false where mailbox = $1 and probe_owed',
      [mailboxKey(OLD)],
    )
    // Nothing moved while locked: the trigger skipped the rows, it did not wait for them.
    const { rows } = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox where id = any($1::bigint[]) and send_at > now()`,
      [locked],
    )
    expect(rows[0]!.n).toBe(locked.length)
  } finally {
    await held.end('commit')
  }
}

for (const which of ['alone', 'with a row naming the mailbox'] as const)
  test(`an interrupted send's lookup row locked (${which}) as the owed state ends comes due once free, not at the probe's end`, async () => {
    const { own, lookup } = await waitingForOwedProbe()
    const worker = createTestEngine(t)
    engines.push(worker)
    await worker.start()
    await endedWhileLocked(which === 'alone' ? [lookup] : [own, lookup])
    expect(await stillNotDue(t, [own, lookup])).toEqual([])
    expect(await notesLeft()).toEqual([])
  })

// serve builds its listeners before the schema check and its drainers after: the notification that
// rows stayed locked must still reach the database's drainer (the test engine's wiring is not serve's).
test("under serve, rows locked as the owed state ends come due once free: serve's listener hands the notification to its database's drainer", async () => {
  const { own, lookup } = await waitingForOwedProbe()
  const events = createEventLog()
  const running = await serve(
    loadConfig({
      DATABASE_URL: t.url,
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'sender@example.com',
      HOST: '127.0.0.1',
      PORT: '0',
      // Long on purpose: only the notification brings the rows due within the test.
      POLL_INTERVAL_SECONDS: '600',
    }),
    { role: 'worker', log: silentLogger, onEvent: events.handler },
  )
  closing.push(() => running.stop('test'))
  await events.waitFor((e) => e.type === 'listener' && e.state === 'listening')
  await endedWhileLocked([own, lookup])
  expect(await stillNotDue(t, [own, lookup])).toEqual([])
  expect(await notesLeft()).toEqual([])
})

test('LISTEN_MODE=poll: rows locked as the owed state ends, naming its mailbox or a lookup waiting for it, come due within about a poll interval once free', async () => {
  const { own, lookup } = await waitingForOwedProbe()
  // Its listener polling, the drainer polls once a second, as serve's does.
  const worker = createTestEngine(t, { config: { listenMode: 'poll' } })
  engines.push(worker)
  await worker.start()
  await endedWhileLocked([own, lookup])
  expect(await stillNotDue(t, [own, lookup])).toEqual([])
  expect(await notesLeft()).toEqual([])
})

test('while LISTEN works, the backstop poll sends no statement for held owed rows (its idle cost stays the claim)', async () => {
  const seen: string[] = []
  const db = throughQueries(t, (run, text) => {
    seen.push(text)
    return run()
  })
  const worker = createTestEngine(t, { deps: { db, pollIntervalMs: () => 100 } })
  engines.push(worker)
  await worker.start()
  const claims = () => seen.filter((q) => /mailer\.claim_/.test(q)).length
  // A poll before the session listened asks, as it should: counted from the second claim after
  // (the first may be that poll's own, its ask still on its way).
  const atStart = claims()
  await pollUntil(async () => (claims() >= atStart + 2 ? true : undefined))
  seen.length = 0
  // Backstop polls while listening: each claims, none asks for the held rows' notes.
  await pollUntil(async () => (claims() >= 5 ? true : undefined))
  expect(seen.filter((q) => q.includes('mailer.owed_probe_lookups')).length).toBe(0)
})

test("a lookup's give-back that finds the owed probe ended meanwhile (its end committed between the gate's read and the give-back) leaves no note: a later pause of its row is not cut short by one", async () => {
  // OLD's probe ended after the gate read it owed: its trigger found the row still sending.
  await t.pool.query(
    'insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now(), false)',
    [mailboxKey(OLD)],
  )
  const lookup = await givenBack(NEW)
  await (await owedLookupGiveBack(t.db, mailboxKey(OLD), lookup, 0)).givenBack?.()
  expect(await stillNotDue(t, [lookup])).toEqual([])
  expect(await notesLeft()).toEqual([])
  // Later the row waits for a throttle of its own mailbox (an hour): no note brings it due early.
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '1 hour', last_error_code = 'mailbox_paused'
      where id = $1::bigint`,
    [lookup],
  )
  await heldOwedRowsDue(t.db)
  const { rows } = await t.pool.query<{ waits: boolean }>(
    `select send_at > now() + interval '50 minutes' as waits from mailer.email_outbox where id = $1::bigint`,
    [lookup],
  )
  expect(rows[0]?.waits).toBe(true)
})

test('LISTEN_MODE=poll, a worker kept busy by steady traffic: rows locked as the owed state ends come due within about a poll interval once free, not after the traffic', async () => {
  const { own, lookup } = await waitingForOwedProbe()
  // MAIL_FROM's steady traffic: a row due every 10 ms for 20 s, each sent at once: the loop claims
  // again and again, waiting only for the due timer between claims, never for an idle poll.
  await t.pool.query(
    `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb,
                                 jsonb_build_object('sendAt', now() + interval '1 hour'))
       from generate_series(1, 2000) i`,
  )
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '1 second' + id * interval '10 milliseconds'
      where id <> all($1::bigint[])`,
    [[own, lookup]],
  )
  const worker = createTestEngine(t, {
    config: { listenMode: 'poll' },
    deps: { pollIntervalMs: () => 1_000 },
  })
  engines.push(worker)
  await worker.start()
  await pollUntil(async () => (worker.sender.calls.length >= 100 ? true : undefined))
  await endedWhileLocked([own, lookup])
  // How much of the backlog was still to send when the held rows came due (or were sent).
  const leftWhenDue = await pollUntil(async () => {
    const { rows } = await t.pool.query<{ held: number; left: number }>(
      `select count(*) filter (where id = any($1::bigint[]) and send_at > now())::int as held,
              count(*) filter (where id <> all($1::bigint[]))::int as left
         from mailer.email_outbox where status = 'pending'`,
      [[own, lookup]],
    )
    return rows[0]!.held === 0 ? rows[0]!.left : undefined
  }, 60_000)
  expect(leftWhenDue).toBeGreaterThan(0)
  expect(await notesLeft()).toEqual([])
})
