// A dead holder's send slots are taken again once the session holding its liveness lock ends: never a live holder's, an older binary's, or one noted before a restart.
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from 'bun:test'
import { type Kysely, sql } from 'kysely'
import pg from 'pg'
import { systemClock } from '../../src/clock.ts'
import type { Database } from '../../src/db/schema.ts'
import { silentLogger } from '../../src/log.ts'
import { holderLockNote, takeHolderLock } from '../../src/outbox/holder-lock.ts'
import { destroyClient } from '../../src/outbox/listen-session.ts'
import { ensureSlots, HOLDER_GONE_MS, takeSlots } from '../../src/outbox/send-slots.ts'
import { createSlotKeeper } from '../../src/outbox/slot-keeper.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { loneListener } from '../support/lone-listener.ts'
import { throughQueries } from '../support/through-queries.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const sessions: pg.Client[] = []
beforeEach(async () => {
  await t.pool.query('truncate mailer.send_slots')
})
afterEach(async () => {
  for (const s of sessions.splice(0)) destroyClient(s)
  // A session's backend outlives its client's close a moment, a stopped listener's too: the next
  // test's lockSession of the same holder would find the lock still held, and not take it.
  await pollUntil(async () => {
    const { rows } = await t.pool.query(
      `select 1 from pg_locks where locktype = 'advisory' and granted
          and database = (select oid from pg_database where datname = current_database())`,
    )
    return rows.length === 0 ? true : undefined
  })
})

/** A session as a worker's LISTEN session holds it: `holder`'s lock taken, or tried. */
async function lockSession(holder: string) {
  const client = new pg.Client({ connectionString: t.url })
  client.on('error', () => {})
  await client.connect()
  sessions.push(client)
  const note = await takeHolderLock(client, holder, {
    db: 'test',
    clock: systemClock,
    log: silentLogger,
    timeoutMs: 5_000,
  })
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid')
  return { client, pid: rows[0]!.pid, note, locked: note !== null }
}

// A TTL no test outlasts: a slot taken back is taken as its holder's death, not as expired.
const take = (holder: string, lockNote?: string | null) =>
  takeSlots(t.db, { want: 2, max: 2, holder, ttlMs: 600_000, ...(lockNote && { lockNote }) })

const notes = async () =>
  (
    await t.pool.query<{ slot: number; holder: string; noted: boolean }>(
      'select slot, holder, holder_lock is not null as noted from mailer.send_slots order by slot',
    )
  ).rows

/** Holder a's slot keeper (as a worker's send gate holds it) on slots 1..max, its takes noting `lockNote`. */
const keeperOfA = (db: Kysely<Database>, max: number, lockNote: () => string | null) =>
  createSlotKeeper({
    db,
    clock: systemClock,
    log: silentLogger,
    holder: 'a',
    max,
    ttlMs: 600_000,
    maxWaitMs: 20,
    reuseMs: 500,
    parkMs: 50,
    lockNote,
  })

/** Database time passing for the sightings: each as if made HOLDER_GONE_MS and more ago. */
const backdateSightings = () =>
  t.pool.query(
    `update mailer.send_slots
        set holder_lock_gone_at = holder_lock_gone_at - make_interval(secs => $1::float8 / 1000 + 1)`,
    [HOLDER_GONE_MS],
  )

const backendGone = async (pid: number) =>
  (await t.pool.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 0

/** A lock session's backend ended by the server (pg_terminate_backend), as a cut or a timeout ends it. */
const sessionEnded = async (pid: number) => {
  await t.pool.query('select pg_terminate_backend($1)', [pid])
  await pollUntil(async () => ((await backendGone(pid)) ? true : undefined))
}

test('a live holder keeps its slots; once its lock session is cut (a kill -9) another worker takes them', async () => {
  const a = await lockSession('a')
  // The note the lock's session read once, as the takes check it.
  const [run] = (
    await sql<{ note: string }>`select ${holderLockNote(sql`'a'`)} as note`.execute(t.db)
  ).rows
  expect(a.note).toBe(run!.note)
  expect(await take('a', a.note)).toHaveLength(2)
  expect(await notes()).toEqual([
    { slot: 1, holder: 'a', noted: true },
    { slot: 2, holder: 'a', noted: true },
  ])
  expect(await take('b')).toEqual([])
  // Its socket closed without a goodbye, as the kernel closes a killed process's.
  destroyClient(a.client)
  await pollUntil(async () => ((await backendGone(a.pid)) ? true : undefined))
  // Seen gone first; taken once it has stayed gone HOLDER_GONE_MS, not before.
  expect(await take('b')).toEqual([])
  expect(await take('b')).toEqual([])
  await backdateSightings()
  expect(await take('b')).toHaveLength(2)
  expect((await notes()).map((n) => n.holder)).toEqual(['b', 'b'])
})

test('a live holder whose lock session alone ends keeps its slots: taken again on its next session, not by another worker meanwhile', async () => {
  const a = await lockSession('a')
  expect(await take('a', a.note)).toHaveLength(2)
  // Its LISTEN session ended under it (pg_terminate_backend, idle_session_timeout): its sends run on.
  await sessionEnded(a.pid)
  expect(await take('b')).toEqual([])
  // Its next session takes the lock again: however long ago the lock was seen gone, the slots stay a's.
  const next = await lockSession('a')
  expect(next.locked).toBe(true)
  await backdateSightings()
  expect(await take('b')).toEqual([])
  // That session ends too: a's lock is seen gone afresh, not since its first loss.
  await sessionEnded(next.pid)
  expect(await take('b')).toEqual([])
  expect((await notes()).map((n) => n.holder)).toEqual(['a', 'a'])
  // Gone for good: once the lock has stayed gone HOLDER_GONE_MS since that sighting, b takes them.
  await backdateSightings()
  expect(await take('b')).toHaveLength(2)
})

test('a sighting left on a slot whose holder holds its lock is cleared by the next take that finds it held: a later loss counts afresh', async () => {
  const a = await lockSession('a')
  expect(await take('a', a.note)).toHaveLength(2)
  // What a take leaves when its pg_locks read came before a's next session took the lock and its
  // update committed after that session cleared the sightings; or an older binary's next session,
  // which clears none.
  await t.pool.query(
    `update mailer.send_slots set holder_lock_gone_at = now() - interval '1 minute'`,
  )
  expect(await take('b')).toEqual([])
  await sessionEnded(a.pid)
  // Gone only now: seen gone, not taken until that has lasted HOLDER_GONE_MS.
  expect(await take('b')).toEqual([])
  await backdateSightings()
  expect(await take('b')).toHaveLength(2)
})

test('a slot its holder took before its LISTEN session took the lock is noted by that take of the lock: taken once the session ends, as the others', async () => {
  // A worker's first pickup at its start (rows already waiting) takes a slot while its LISTEN
  // session is still connecting: no note to write yet.
  expect(await takeSlots(t.db, { want: 1, max: 2, holder: 'a', ttlMs: 600_000 })).toHaveLength(1)
  const a = await lockSession('a')
  expect(await take('a', a.note)).toHaveLength(1)
  expect((await notes()).filter((n) => n.noted).map((n) => n.slot)).toEqual([1, 2])
  // Its session cut: both slots seen gone, both taken once that has lasted HOLDER_GONE_MS.
  await sessionEnded(a.pid)
  expect(await take('b')).toEqual([])
  await backdateSightings()
  expect(await take('b')).toHaveLength(2)
})

test('a take under way while its worker’s session takes the lock notes its slots once it answers: the lock’s statement ran before the take committed', async () => {
  await ensureSlots(t.db, 1)
  let note: string | null = null
  let session: Awaited<ReturnType<typeof lockSession>> | undefined
  // The take, its note read (none), reaches the server after the lock's statement has run (which
  // finds no slot of a's to note) and answers after that statement's answer is in.
  const db = throughQueries(t, async (run, text) => {
    if (!text.includes('seen_gone') || session) return run()
    session = await lockSession('a')
    const answer = await run()
    note = session.note
    return answer
  })
  const keeper = keeperOfA(db, 1, () => note)
  const permit = await keeper.acquire(new AbortController().signal)
  expect(permit).not.toBeNull()
  expect(session!.note).not.toBeNull()
  expect(await notes()).toEqual([{ slot: 1, holder: 'a', noted: true }])
  await sessionEnded(session!.pid)
  const takeB = () => takeSlots(t.db, { want: 1, max: 1, holder: 'b', ttlMs: 600_000 })
  expect(await takeB()).toEqual([])
  await backdateSightings()
  expect(await takeB()).toHaveLength(1)
  await permit!.release()
  await keeper.close()
})

test('a take that commits after the lock’s statement read the slots and answers before that statement does is noted too: its slot is taken once the worker dies, not after its TTL', async () => {
  // Slot 2 a's already, taken before its session (no note); slot 1 free. The test holds slot 2's
  // row: the lock's statement, its slots read, waits for it before it commits and answers.
  await ensureSlots(t.db, 2)
  await t.pool.query(
    `update mailer.send_slots set holder = 'a', token = gen_random_uuid(),
            expires_at = now() + interval '10 minutes' where slot = 2`,
  )
  const row = await t.pool.connect()
  const { listener, listening } = loneListener(t.url, { checkTimeoutMs: 30_000, holder: 'a' })
  const keeper = keeperOfA(t.db, 2, () => listener.holderLockNote())
  let permit: Awaited<ReturnType<typeof keeper.acquire>> = null
  let pid: number | null = null
  try {
    await row.query('begin')
    await row.query('select 1 from mailer.send_slots where slot = 2 for update')
    const listened = listening()
    await pollUntil(async () => {
      pid = listener.backendPid()
      if (pid === null) return undefined
      const { rows } = await t.pool.query(
        `select 1 from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'`,
        [pid],
      )
      return rows.length === 1 ? true : undefined
    })
    // The take, no note yet to write, commits and answers while the lock's statement waits.
    permit = await keeper.acquire(new AbortController().signal)
    expect(permit).not.toBeNull()
    expect(listener.holderLockNote()).toBeNull()
    await row.query('commit')
    await listened
    expect(listener.holderLockNote()).not.toBeNull()
    expect(await notes()).toEqual([
      { slot: 1, holder: 'a', noted: true },
      { slot: 2, holder: 'a', noted: true },
    ])
  } finally {
    await row.query('rollback').catch(() => {})
    row.release()
    await listener.stop()
  }
  // The worker dead (its session's backend ended): both its slots go to b once the lock has
  // stayed gone HOLDER_GONE_MS, not the one its take wrote no note on after its TTL.
  const ended = pid!
  await pollUntil(async () => ((await backendGone(ended)) ? true : undefined))
  const takeB = () => takeSlots(t.db, { want: 2, max: 2, holder: 'b', ttlMs: 600_000 })
  expect(await takeB()).toEqual([])
  await backdateSightings()
  expect((await takeB()).map((s) => s.slot).sort()).toEqual([1, 2])
  await permit!.release()
  await keeper.close()
})

test('a free slot is taken before a dead holder’s', async () => {
  const a = await lockSession('a')
  expect(await take('a', a.note)).toHaveLength(2)
  await t.pool.query(`update mailer.send_slots set expires_at = '-infinity' where slot = 2`)
  destroyClient(a.client)
  await pollUntil(async () => ((await backendGone(a.pid)) ? true : undefined))
  const [got] = await takeSlots(t.db, { want: 1, max: 2, holder: 'b', ttlMs: 600_000 })
  expect(got?.slot).toBe(2)
})

test('an older binary’s take, which leaves the last note as it was, waits out its TTL', async () => {
  const a = await lockSession('a')
  expect(await take('a', a.note)).toHaveLength(2)
  await t.pool.query(`update mailer.send_slots set expires_at = '-infinity'`)
  // The take of the release before 0117: holder, token and expiry; the note stays a's.
  await t.pool.query(
    `update mailer.send_slots set holder = 'old', token = gen_random_uuid(),
            expires_at = now() + interval '10 minutes'`,
  )
  destroyClient(a.client)
  await pollUntil(async () => ((await backendGone(a.pid)) ? true : undefined))
  expect(await take('b')).toEqual([])
})

test('a slot noted before the server’s restart waits out its TTL; one noted since is taken', async () => {
  await t.pool.query(
    `insert into mailer.send_slots (slot, holder, token, expires_at, holder_lock)
     values (1, 'a', gen_random_uuid(), now() + interval '10 minutes', 'a@1'),
            (2, 'a', gen_random_uuid(), now() + interval '10 minutes', $1)`,
    [
      (await sql<{ note: string }>`select ${holderLockNote(sql`'a'`)} as note`.execute(t.db))
        .rows[0]!.note,
    ],
  )
  expect(await take('b')).toEqual([])
  await backdateSightings()
  expect((await take('b')).map((s) => s.slot)).toEqual([2])
})

test('a statistics reset during a lock session’s life leaves its note stale: its slots wait out their TTL if it dies; its next session’s are taken', async () => {
  const runNote = async () =>
    (await sql<{ note: string }>`select ${holderLockNote(sql`'a'`)} as note`.execute(t.db)).rows[0]!
      .note
  const a = await lockSession('a')
  expect(await take('a', a.note)).toHaveLength(2)
  // A DBA's reset, as a crash restart resets them: the takes compare a new run from now on.
  await t.pool.query(`select pg_stat_reset_shared('bgwriter')`)
  const after = await runNote()
  expect(after).not.toBe(a.note)
  destroyClient(a.client)
  await pollUntil(async () => ((await backendGone(a.pid)) ? true : undefined))
  // Not even seen gone: however long after, b takes nothing before the TTL.
  expect(await take('b')).toEqual([])
  await t.pool.query(`update mailer.send_slots set holder_lock_gone_at = now() - interval '1 hour'`)
  expect(await take('b')).toEqual([])
  expect((await notes()).map((n) => n.holder)).toEqual(['a', 'a'])
  // The worker's next session reads the run afresh: its slots, once it dies, are taken again.
  const next = await lockSession('a')
  expect(next.note).toBe(after)
  await t.pool.query(`update mailer.send_slots set expires_at = '-infinity'`)
  expect(await take('a', next.note)).toHaveLength(2)
  destroyClient(next.client)
  await pollUntil(async () => ((await backendGone(next.pid)) ? true : undefined))
  expect(await take('b')).toEqual([])
  await backdateSightings()
  expect(await take('b')).toHaveLength(2)
})

test('a session that finds the lock held by an earlier one gets no note: its takes note nothing, nor takes without one', async () => {
  const earlier = await lockSession('a')
  const later = await lockSession('a')
  expect([earlier.locked, later.locked]).toEqual([true, false])
  expect(await takeSlots(t.db, { want: 1, max: 2, holder: 'a', ttlMs: 600_000 })).toHaveLength(1)
  expect(await take('a', later.note)).toHaveLength(1)
  expect((await notes()).map((n) => n.noted)).toEqual([false, false])
  destroyClient(earlier.client)
  await pollUntil(async () => ((await backendGone(earlier.pid)) ? true : undefined))
  expect(await take('b')).toEqual([])
})

/** A listener for holder 'a': its session holds that holder's liveness lock while it listens. */
const holderListener = (checkIntervalMs: number) =>
  loneListener(t.url, { checkIntervalMs, checkTimeoutMs: 5_000, holder: 'a' })

test('a listener given a holder holds its lock while it listens, takes it again on its next session, and names its session for the takes', async () => {
  const { listener, listening } = holderListener(600_000)
  let last: number | null = null
  try {
    await listening()
    const pid = listener.backendPid()!
    expect(listener.holderLockPid()).toBe(pid)
    expect(await take('a', listener.holderLockNote())).toHaveLength(2)
    expect(await take('b')).toEqual([])
    await t.pool.query('select pg_terminate_backend($1)', [pid])
    last = await pollUntil(async () => {
      const next = listener.holderLockPid()
      return next !== null && next !== pid ? next : undefined
    })
    expect(last).toBe(listener.backendPid()!)
    await backdateSightings()
    expect(await take('b')).toEqual([])
  } finally {
    await listener.stop()
  }
  expect(listener.holderLockPid()).toBeNull()
  // Stopped, its socket closed: the server releases the lock when that backend exits, which stop()
  // does not wait for. Its slots are taken once the lock has stayed gone HOLDER_GONE_MS.
  const ended = last!
  await pollUntil(async () => ((await backendGone(ended)) ? true : undefined))
  expect(await take('b')).toEqual([])
  await backdateSightings()
  expect(await take('b')).toHaveLength(2)
})

test('a listener whose earlier session still holds the lock names none, and takes it at a check once that session ends', async () => {
  const earlier = await lockSession('a')
  const { listener, listening } = holderListener(50)
  try {
    await listening()
    expect(listener.holderLockPid()).toBeNull()
    // A take meanwhile notes nothing; the retake that gets the lock notes it.
    expect(await take('a', listener.holderLockNote())).toHaveLength(2)
    expect((await notes()).map((n) => n.noted)).toEqual([false, false])
    destroyClient(earlier.client)
    const pid = await pollUntil(async () => listener.holderLockPid() ?? undefined)
    expect(pid).toBe(listener.backendPid()!)
    expect((await notes()).map((n) => n.noted)).toEqual([true, true])
  } finally {
    await listener.stop()
  }
})

test('a listener whose earlier session held the lock takes it soon after that session ends, not at its next check: the slots taken under the earlier session stay its worker’s', async () => {
  // The earlier session of a's (a cut connection whose backend Postgres had not ended when the
  // next one connected) took a's slots; its next session listens, the lock not yet its own.
  const earlier = await lockSession('a')
  expect(earlier.locked).toBe(true)
  expect(await take('a', earlier.note)).toHaveLength(2)
  // Checks 10 minutes apart: none within the test.
  const { listener, listening } = holderListener(600_000)
  try {
    await listening()
    expect(listener.holderLockPid()).toBeNull()
    await sessionEnded(earlier.pid)
    expect(await take('b')).toEqual([])
    // Held again well before a sighting ages HOLDER_GONE_MS (bounded by it, not by the check).
    const pid = await pollUntil(async () => listener.holderLockPid() ?? undefined, HOLDER_GONE_MS)
    expect(pid).toBe(listener.backendPid()!)
    await backdateSightings()
    expect(await take('b')).toEqual([])
    expect((await notes()).map((n) => n.holder)).toEqual(['a', 'a'])
  } finally {
    await listener.stop()
  }
})

test('the catalogue says who writes a slot’s note, the take or its worker’s session, naming functions that exist (0199)', async () => {
  const { rows } = await t.pool.query<{ comment: string | null }>(
    `select col_description('mailer.send_slots'::regclass,
              (select attnum from pg_attribute
                where attrelid = 'mailer.send_slots'::regclass and attname = 'holder_lock')) as comment`,
  )
  const comment = rows[0]?.comment ?? ''
  expect(comment).toContain('noted by the session when it takes the lock')
  expect(comment).toContain('seen gone (holder_lock_gone_at, 0129) and taken again 5 s on')
  expect(comment).not.toContain('was held at the take')
  const src = async (file: string) =>
    Bun.file(new URL(`../../src/outbox/${file}`, import.meta.url)).text()
  expect(await src('holder-lock.ts')).toContain('export async function noteTakenMeanwhile(')
  expect(await src('holder-lock.ts')).toContain('export function holderLockNote(')
  expect(await src('send-slots.ts')).toContain('export async function noteSlots(')
})
