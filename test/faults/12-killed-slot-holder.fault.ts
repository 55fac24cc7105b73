// Scenario 12: kill -9 a worker holding every provider slot: the next worker's sends wait for the holder's death to show, not for its slots' TTL.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { systemClock } from '../../src/clock.ts'
import type { Database as Schema } from '../../src/db/schema.ts'
import { silentLogger } from '../../src/log.ts'
import { takeHolderLock } from '../../src/outbox/holder-lock.ts'
import { HOLDER_GONE_MS, takeSlots } from '../../src/outbox/send-slots.ts'
import { closedPort } from '../support/closed-port.ts'
import {
  allSent,
  cleanupAll,
  type Database,
  enqueue,
  FAST,
  type Graph,
  type Mailer,
  ownCluster,
  report,
  seconds,
  sharedDatabase,
  spawnMailer,
  startFreezingProxy,
  startGraph,
  within,
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { lockLostWhileUnanswered } from './lock-kept.ts'
import { sendCounts } from './send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

/** A worker's environment with 2 provider slots whose TTL is 45 s (the request timeout + 15 s). */
const twoSlots = (db: Database, graph: Graph) => ({
  DATABASE_URL: db.url,
  ...graph.env,
  ...FAST,
  GRAPH_REQUEST_TIMEOUT_SECONDS: '30',
  // At least twice the request timeout.
  LEASE_SECONDS: '60',
  GRAPH_MAX_CONCURRENCY: '2',
})

/** Both slots taken by `mailer`, their sends in flight at the fake: the slot rows' holders. */
const bothSlotsInFlight = (db: Database, graph: Graph, mailer: Mailer) =>
  within(
    'both slots taken and their sends in flight',
    30_000,
    async () => {
      const rows = await db.q<{ holder: string }>(
        'select holder from mailer.send_slots where expires_at > now()',
      )
      return rows.length === 2 && graph.fake.inFlight() >= 2 ? rows : undefined
    },
    { mailers: [mailer], every: 20 },
  )

/** Both rows of `waiting` claimed (the second worker's), waiting for a slot. */
const claimedWaiting = (db: Database, waiting: readonly string[], mailers: Mailer[]) =>
  within(
    'the second worker’s rows claimed, waiting for a slot',
    30_000,
    async () => {
      const [r] = await db.q<{ n: number }>(
        `select count(*)::int as n from mailer.email_outbox
          where id = any($1::bigint[]) and status = 'sending'`,
        [waiting],
      )
      return r!.n === 2 ? true : undefined
    },
    { mailers, every: 50 },
  )

/** The backend holding `holder`'s liveness lock, if any. */
const lockHolder = async (db: Database, holder: string) =>
  (
    await db.q<{ pid: number }>(
      `select pid from pg_locks where locktype = 'advisory' and objsubid = 1 and granted
          and (classid::int8 << 32) | objid::int8 = hashtextextended($1, 0)`,
      [holder],
    )
  )[0]?.pid

test('SIGKILL of the worker holding every provider slot: another worker sends before those slots would have expired', async () => {
  const db = await sharedDatabase('killed_slots')
  // The killed worker's sends never end on their own: its slots stay taken as it left them.
  const graph = await startGraph({ concurrencyLimit: 4 })
  graph.fake.setFaults({ latencyMs: 600_000 })
  const env = {
    ...twoSlots(db, graph),
    WORKER_CONCURRENCY: '4',
    GRAPH_MAILBOX_LOOKUP: 'false',
    AMBIGUOUS_SEND_POLICY: 'resend',
  }
  const ids = await enqueue(db, 4)
  const first = await spawnMailer('slots-kill-1', env)
  await bothSlotsInFlight(db, graph, first)
  first.proc.kill('SIGKILL')
  expect(await first.exited).not.toBe(0)
  // Read once the holder is dead: nobody renews them now. A send needs one slot: the first to expire.
  const [held] = await db.q<{ expires: Date; killed: Date }>(
    `select min(expires_at) as expires, now() as killed from mailer.send_slots where expires_at > now()`,
  )
  graph.fake.setFaults({})

  const second = await spawnMailer('slots-kill-2', env)
  const late = await enqueue(db, 1, { tag: 'after the kill' })
  const [sent] = await within(
    'a row sent after the kill',
    90_000,
    async () => {
      const rows = await db.q<{ sent_at: Date }>(
        `select min(sent_at) as sent_at from mailer.email_outbox
          where id = any($1::bigint[]) and status = 'sent' having count(*) > 0`,
        [[...ids, ...late]],
      )
      return rows.length > 0 ? rows : undefined
    },
    { mailers: [second], every: 100 },
  )
  const sentAt = sent!.sent_at
  report('12 killed slot holder', {
    slotTtlLeftAtKill: seconds(held!.expires.getTime() - held!.killed.getTime()),
    firstSendAfterKill: seconds(sentAt.getTime() - held!.killed.getTime()),
  })
  // Database times both: a loaded machine stretches the wait, not this comparison's margin (~40 s).
  expect(sentAt < held!.expires).toBe(true)
  second.proc.kill('SIGTERM')
  expect(await second.exited).toBe(0)
}, 180_000)

/**
 * Notes each slot take statement (its database time) run by a worker connecting to `url` (which
 * names it `who`; the product sets no other setting of that name): a statement trigger fires
 * whether or not the take updated a row.
 */
async function noteTakes(db: Database, who: string) {
  await db.q(`create table public.fault_takes (who text not null, at timestamptz not null)`)
  await db.q(`create function public.fault_note_take() returns trigger language plpgsql as $$
                begin
                  if current_query() like '%seen_gone%' then
                    insert into public.fault_takes
                    values (coalesce(current_setting('fault.worker', true), ''), now());
                  end if;
                  return null;
                end $$`)
  await db.q(`create trigger fault_note_take after update on mailer.send_slots
                for each statement execute function public.fault_note_take()`)
  const url = new URL(db.url)
  url.searchParams.set('options', `-c fault.worker=${who}`)
  return {
    url: url.toString(),
    /** How many take statements it ran later than `at` (a take's two updates fire it twice). */
    since: async (at: Date) =>
      (
        await db.q<{ n: number }>(
          'select count(distinct at)::int as n from public.fault_takes where who = $1 and at > $2',
          [who, at],
        )
      )[0]!.n,
  }
}

test('a live worker whose LISTEN session alone ends keeps its provider slots: the other worker, its sends waiting, takes none while the first one’s are in flight', async () => {
  const db = await sharedDatabase('live_slot_holder')
  // The first worker's sends never end on their own: they hold both slots throughout.
  const graph = await startGraph({ concurrencyLimit: 4 })
  graph.fake.setFaults({ latencyMs: 600_000 })
  const env = { ...twoSlots(db, graph), GRAPH_MAILBOX_LOOKUP: 'false' }
  const secondTakes = await noteTakes(db, 'second')
  // Two sends at most, so the rows enqueued next are the second worker's to send.
  const first = await spawnMailer('slots-live-1', { ...env, WORKER_CONCURRENCY: '2' })
  await enqueue(db, 2)
  const [held] = await bothSlotsInFlight(db, graph, first)
  const holder = held!.holder
  const second = await spawnMailer('slots-live-2', { ...env, DATABASE_URL: secondTakes.url })
  const waiting = await enqueue(db, 2, { tag: 'waiting for a slot' })
  await claimedWaiting(db, waiting, [first, second])
  const lockedBy = () => lockHolder(db, holder)
  const ended = await lockedBy()
  expect(ended).toBeDefined()
  // Only its LISTEN session's backend: its process, its pool and its sends live on.
  await db.q('select pg_terminate_backend($1)', [ended])
  const relockedBy = await within(
    'the first worker’s next LISTEN session holding its lock',
    30_000,
    async () => {
      const [r] = await db.q<{ at: Date }>('select now() as at')
      const pid = await lockedBy()
      return pid !== undefined && pid !== ended ? r!.at : undefined
    },
    { mailers: [first, second], every: 20 },
  )
  // No take saw the lock gone after it was held again; one that saw it before did so by then. A
  // slot is taken at a take HOLDER_GONE_MS after its sighting: the second worker's takes, going on
  // while its rows wait, are past that bound (+1 s: the read of pg_locks after that of now()).
  const bound = new Date(relockedBy.getTime() + HOLDER_GONE_MS + 1_000)
  await within(
    'two takes of the second worker’s past the bound',
    60_000,
    async () => ((await secondTakes.since(bound)) >= 2 ? true : undefined),
    { mailers: [first, second], every: 100 },
  )
  const slots = await db.q<{ holder: string }>(
    'select holder from mailer.send_slots where expires_at > now() order by slot',
  )
  expect(slots.map((r) => r.holder)).toEqual([holder, holder])
  expect(graph.fake.maxConcurrent).toBe(2)
}, 120_000)

// deploy/README.md's known limit, kept visible: the worker cannot tell its lock is gone before it
// notices the cut, and what it would cost is bounded (its sends in flight, nothing sent twice).
test('a LISTEN connection cut where Postgres ends its backend before the worker notices: the other worker takes its slots 5 s after, its sends in flight beside them, no row sent twice', async () => {
  const db = await sharedDatabase('cut_slot_holder')
  const graph = await startGraph({ concurrencyLimit: 4 })
  let answer = () => {}
  graph.fake.setFaults({ answerAfter: new Promise<void>((r) => (answer = r)) })
  // The first worker's LISTEN session alone passes the proxy; no check of it comes (FAST: 600 s).
  // Its first connect is refused: the worker's start-up claim takes the rows already waiting, and
  // their slots, before a session of its holds the lock (which notes them when it takes it), as
  // any worker started on a backlog may. Round 53's flake: one such slot noted nothing, was never
  // taken, and both held sends timed out (30 s) and went again.
  const refused = `postgres://127.0.0.1:${await closedPort()}/refused`
  let connects = 0
  const proxy = await startFreezingProxy(() => (connects++ === 0 ? refused : db.url))
  const listenUrl = new URL(db.url)
  listenUrl.port = String(proxy.port)
  const env = { ...twoSlots(db, graph), GRAPH_MAILBOX_LOOKUP: 'false' }
  const own = await enqueue(db, 2)
  const first = await spawnMailer('slots-cut-1', {
    ...env,
    LISTEN_DATABASE_URL: listenUrl.toString(),
    WORKER_CONCURRENCY: '2',
  })
  const [held] = await bothSlotsInFlight(db, graph, first)
  const holder = held!.holder
  const second = await spawnMailer('slots-cut-2', env)
  const waiting = await enqueue(db, 2, { tag: 'waiting for a slot' })
  await claimedWaiting(db, waiting, [first, second])
  const ended = await within(
    'the first worker’s LISTEN session holding its lock',
    30_000,
    () => lockHolder(db, holder),
    { mailers: [first, second], every: 20 },
  )
  // The route goes silent, and the server ends the backend (its TCP keepalive, a reset from the
  // network): the lock is released, the worker hears nothing.
  expect(proxy.freeze()).toBe(1)
  await db.q('select pg_terminate_backend($1)', [ended])
  await within(
    'the second worker’s sends in flight beside the first one’s',
    60_000,
    () => (graph.fake.inFlight() >= 4 ? true : undefined),
    { mailers: [first, second], every: 50 },
  )
  expect(await lockHolder(db, holder)).toBeUndefined()
  expect(graph.fake.maxConcurrent).toBe(4)
  answer()
  const ids = [...own, ...waiting]
  await allSent(db, ids, 60_000, [first, second])
  const sends = await sendCounts(db, graph, ids)
  report('12 cut slot holder', { sendPeak: graph.fake.maxConcurrent, duplicates: sends.duplicates })
  expect(sends.duplicates).toBe(0)
}, 180_000)

test('SIGTERM while sends are in flight: the stopping worker keeps its liveness lock until they are over', async () => {
  const db = await sharedDatabase('stopping_slots')
  const graph = await startGraph({ concurrencyLimit: 4 })
  graph.fake.setFaults({ latencyMs: 3_000 })
  const mailer = await spawnMailer('slots-stop', {
    ...twoSlots(db, graph),
    SHUTDOWN_GRACE_SECONDS: '20',
  })
  await enqueue(db, 2)
  const [held] = await bothSlotsInFlight(db, graph, mailer)
  const holder = held!.holder
  mailer.proc.kill('SIGTERM')
  // Until Graph has answered both sends: their slots are the stopping worker's, its lock held.
  const lockLost = await lockLostWhileUnanswered({
    held: async () => {
      const [r] = await db.q<{ held: boolean }>(
        `select exists (select 1 from pg_locks where locktype = 'advisory' and objsubid = 1 and granted
                           and (classid::int8 << 32) | objid::int8 = hashtextextended($1, 0)) as held`,
        [holder],
      )
      return r!.held
    },
    answered: () => graph.fake.accepted.length,
    sends: 2,
  })
  expect(lockLost).toBe(false)
  expect(await mailer.exited).toBe(0)
}, 120_000)

// On a cluster of its own: killing a backend restarts every session of the server it runs on.
test('a crash restart (a backend killed -9: every session ended, the server’s start time kept) is no holder’s death: its slots wait out their TTL', async () => {
  const { db } = await ownCluster('crash_restart', { crashable: true })
  const kysely = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: db.pool }) })
  const session = async (holder: string) => {
    const client = new pg.Client({ connectionString: db.url })
    client.on('error', () => {})
    await client.connect()
    const note = await takeHolderLock(client, holder, {
      db: 'test',
      clock: systemClock,
      log: silentLogger,
      timeoutMs: 5_000,
    })
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid')
    return { pid: rows[0]!.pid, note }
  }
  // A TTL no test outlasts: a slot taken back is taken as its holder's death, not as expired.
  const take = (holder: string, lockNote?: string | null) =>
    takeSlots(kysely, { want: 2, max: 2, holder, ttlMs: 600_000, ...(lockNote && { lockNote }) })
  const a = await session('a')
  expect(await take('a', a.note)).toHaveLength(2)
  process.kill((await session('victim')).pid, 'SIGKILL')
  // The postmaster ends every session, a's too, and takes connections again once recovered.
  await within('the server recovered and a’s session gone', 60_000, async () => {
    const gone = await db
      .q('select 1 from pg_stat_activity where pid = $1', [a.pid])
      .then((r) => r.length === 0)
      .catch(() => false)
    return gone ? true : undefined
  })
  expect(await take('b')).toEqual([])
  // Nor at a later take, however long after: a's lock is not seen gone (sql/0129's sighting).
  await db.q(
    `update mailer.send_slots set holder_lock_gone_at = holder_lock_gone_at - interval '1 hour'`,
  )
  expect(await take('b')).toEqual([])
}, 120_000)
