// Rows sent back for a pacing turn while a token served, when a refusal then blocks every send: due and named by it, their turns given up; what GET /v1/outbox and status read.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { pacedRowsBlocked } from '../../src/outbox/paced-rows-blocked.ts'
import { pendingLastErrors } from '../../src/outbox/pending-last-errors.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { generateTestCertificate } from '../support/fake-graph.ts'
import {
  EXPIRED,
  GIVE_UP_ASK,
  pacedReads,
  rowsPaced as rowsPacedOf,
  startPaced,
} from '../support/paced-refusal.ts'
import { throughQueries } from '../support/through-queries.ts'
import { type OutageRun, startOutage } from '../support/token-outage.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { count, reservedTurns } = pacedReads(t)
// Engines a test left running (one that timed out) stopped before the next test and the database's drop.
const ended = endedAfterEach()

/** Past a token's use (an hour), as the token source's clock reads it. */
const TOKEN_USED_UP_MS = 2 * 3600_000

test('a refusal that blocks every send gives up the pacing turns reserved before it: their rows are due and named by it, as the rows it met; once fixed they are paced again from then', async () => {
  const r = await startPaced(t)
  try {
    await rowsPacedThenRefused(r)
  } finally {
    await r.stop()
  }
})

/** One sent, the other nine sent back to turns reserved a minute apart. */
async function rowsPaced(r: OutageRun) {
  await rowsPacedOf(t, r)
  expect(await reservedTurns()).toBe(1)
}

/** The cached token's use ends (`advanceMs`) and Entra refuses the secret: a new row's claim meets it. */
async function refusedAgain(r: OutageRun, advanceMs: number) {
  const asked = r.fake.tokenRequests.length
  r.clock.advance(advanceMs)
  r.fake.setFaults({ token: Array.from({ length: 100 }, () => EXPIRED) })
  await enqueue(t)
  r.engine.drainer.wake()
  await pollUntil(async () => {
    if (r.fake.tokenRequests.length <= asked || r.engine.drainer.status().inFlight > 0)
      return undefined
    if (r.transport.blockedForMs() === 0) return undefined
    return (await count(`last_error_code = 'AADSTS7000222'`)) > 0 ? true : undefined
  }, 30_000)
}

/** One sent, nine paced; then the cached token's use ends and Entra refuses; then it is fixed. */
async function rowsPacedThenRefused(r: OutageRun) {
  await rowsPaced(r)
  await refusedAgain(r, TOKEN_USED_UP_MS)
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

/** What GET /v1/outbox shows of the pending rows: their code, Entra's words or not, due or not. */
const pendingRows = async () =>
  (
    await t.pool.query(
      `select last_error_code as code, last_error ~ '^invalid_client: AADSTS7000222' as words,
              send_at <= now() as due, count(*)::int as n
         from mailer.email_outbox where status = 'pending' group by 1, 2, 3 order by 1, 3`,
    )
  ).rows

test('a refusal one worker meets while another live worker’s credential works leaves the turns that one paced; once every live worker notes a refusal, the next block gives them up', async () => {
  // The statement's answers, counted: the test waits for the worker's decision, not for a bound.
  let pacedAnswers = 0
  const db = throughQueries(t, async (run, text) => {
    const answer = await run()
    if (text.includes("delete from mailer.mailbox_pacing where mailbox like 'queue %'"))
      pacedAnswers++
    return answer
  })
  const r = await startPaced(t, { deps: { db } })
  // Another machine whose token requests Entra answers (one the misconfigured secret has not
  // reached, or whose rotation came first): its live registry entry notes no refusal.
  const other = `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
                 values ('working:2:abcdef', 'working', 2, 'test', '', 60)
                 on conflict (id) do update set last_heartbeat_at = now()`
  try {
    await t.pool.query(other)
    await rowsPaced(r)
    await refusedAgain(r, TOKEN_USED_UP_MS)
    await pollUntil(async () => (pacedAnswers > 0 ? true : undefined))
    // The nine keep the turns reserved for them (the working machine sends them at the rate),
    // the row the refusal met is named by it.
    expect(await pendingRows()).toEqual([
      { code: 'AADSTS7000222', words: true, due: false, n: 1 },
      { code: 'mailbox_paced', words: false, due: false, n: 9 },
    ])
    expect(await reservedTurns()).toBe(1)
    expect((await liveStats(t.db, null)).heldBackPending).toBe(9)

    // The refusal reaches the other machine too (its entry notes it): the next block, a refusal
    // past the cooldown, gives the turns up.
    await t.pool.query(
      `update mailer.workers set credential_refused_code = 'AADSTS7000222',
              credential_refused_since = now(), last_heartbeat_at = now()
        where id = 'working:2:abcdef'`,
    )
    await refusedAgain(r, 61_000)
    await pollUntil(async () => (pacedAnswers > 1 ? true : undefined))
    expect(await pendingRows()).toEqual([
      { code: 'AADSTS7000222', words: true, due: false, n: 2 },
      { code: 'AADSTS7000222', words: true, due: true, n: 9 },
    ])
    expect(await reservedTurns()).toBe(0)
    expect(r.fake.accepted).toHaveLength(1)
  } finally {
    await r.stop()
  }
})

/** `n` rows sent back to turns reserved a minute apart (as a working token paced them). */
async function turnsReserved(n: number) {
  for (let i = 1; i <= n; i++) {
    const id = await enqueue(t)
    await t.pool.query(
      `update mailer.email_outbox set last_error_code = 'mailbox_paced', last_error = 'not sent yet',
              send_at = now() + make_interval(mins => $2) where id = $1`,
      [id, i],
    )
  }
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at)
     values ('queue sender@example.com', now() + make_interval(mins => $1))`,
    [n + 1],
  )
}

/** An ask's answer, its `endsInMs` (paced-rows-blocked.ts) in whole seconds: the statement's own time rounded off. */
const inSeconds = ({ endsInMs, ...a }: Awaited<ReturnType<typeof pacedRowsBlocked>>) => ({
  ...a,
  ...(endsInMs !== undefined && { endsInS: Math.round(endsInMs / 1000) }),
})

test('an entry noting no refusal holds the turns while live by its own lease length (two of them: a crashed process’s too, as an idle live one beats once per lease); past that, or noting one, it does not; a release before 0084’s, two of the longest lease', async () => {
  await turnsReserved(3)
  const block = { code: 'AADSTS7000222', message: 'invalid_client: AADSTS7000222: expired' }
  const entry = async (id: string, leaseSeconds: number | null, beatSecondsAgo: number) =>
    t.pool.query(
      `insert into mailer.workers (id, host, pid, version, lease_seconds, last_heartbeat_at)
       values ($1, 'h', 2, 'v', $2::int, now() - make_interval(secs => $3))`,
      [id, leaseSeconds, beatSecondsAgo],
    )
  // The caller's own entry, not refused yet as the database reads it: left out.
  await entry('me:1:abcdef', 60, 0)
  const ask = () => pacedRowsBlocked(t.db, block, 'me:1:abcdef')
  // Killed 100 s ago (a lease of 60 s): an idle live worker beats once per lease length, and
  // later after a failed reclaim, so one beat missed is no death.
  await entry('crashed:2:abcdef', 60, 100)
  // Not everyone's: and in how long its entry stops reading live, absent a beat (20 s).
  expect(inSeconds(await ask())).toEqual({ everyone: false, named: 0, endsInS: 20 })
  expect(await reservedTurns()).toBe(1)
  // Two of its lease lengths passed: no longer live. A release before 0084 (no lease noted),
  // stopped uncleanly 1 h 59 min ago, still is: LEASE_SECONDS' longest, an hour, twice.
  const beatAgo = (id: string, s: number) =>
    t.pool.query(
      `update mailer.workers set last_heartbeat_at = now() - make_interval(secs => $2) where id = $1`,
      [id, s],
    )
  await beatAgo('crashed:2:abcdef', 121)
  await entry('older:3:abcdef', null, 7140)
  expect(inSeconds(await ask())).toEqual({ everyone: false, named: 0, endsInS: 60 })
  // A refused one counts as refused, live or not; the older one gone: the turns are given up.
  await t.pool.query(
    `update mailer.workers set credential_refused_code = 'AADSTS7000222', credential_refused_since = now()
      where id = 'crashed:2:abcdef'`,
  )
  await beatAgo('crashed:2:abcdef', 10)
  await beatAgo('older:3:abcdef', 7201)
  expect(await ask()).toEqual({ everyone: true, named: 3 })
  expect(await reservedTurns()).toBe(0)
  expect(await pendingRows()).toEqual([{ code: 'AADSTS7000222', words: true, due: true, n: 3 }])
})

/** A refusal's note in the worker's own entry (credential-refusal-note.ts). */
const NOTE = 'update mailer.workers w'
/** A beat of the worker's entry (registry-beat.ts registryBeat: an idle worker's rides on the reclaim). */
const BEAT = 'insert into mailer.workers'

/** A mark of the due rows a block holds (waiting-rows.ts), made before each ask of a block. */
const MARK = 'max(id) from mailer.email_outbox'
/** Each latch's bound: what it waits for comes within a statement or a beat (b's: 1 s). */
const LATCH_MS = 10_000

// The second and third: b's note fails (its database away a moment), and its next beat writes the
// refusal. In the third, a's note lands before a's own first ask begins (its mark held until then):
// a asks once, after its note, where in the second its note lands while it asks, and it asks again.
for (const [bNoteFails, aNotedFirst] of [
  [false, false],
  [true, false],
  [true, true],
] as const)
  test(`two workers refused at once, each asking before the other’s note landed: once both ${bNoteFails ? 'refusals are written (one by a beat, its note failed)' : 'notes land'}, the turns are given up, not left to the next block${aNotedFirst ? ' (a’s note landed before its own ask)' : ''}`, async () => {
    await turnsReserved(3)
    // One secret on both machines, refused by Entra at the same moment (a deploy of a mistyped one).
    let refusal: { code: string; forMs: number } | null = null
    const block = { code: 'AADSTS7000222', message: 'invalid_client: AADSTS7000222: expired' }
    // Every statement held here waits with a bound, named should it run out; all go at the end.
    const latches = boundedLatches(LATCH_MS)
    const asked = {
      a: latches.make('a’s first ask answered'),
      b: latches.make('b’s first ask answered'),
    }
    const noted = {
      a: latches.make('a’s note landed'),
      b: latches.make('b’s note landed or failed'),
    }
    // a's ask begun once its own note had landed, answered: a's last ask before b's refusal is
    // written, the first (its note landed before it began) or the one its note's landing owed.
    const askedAfterNote = latches.make('a’s ask after its own note answered')
    const landed = { a: false, b: false }
    const engines: TestEngine[] = []
    const listeners: (() => void)[] = []
    for (const [me, other] of [
      ['a', 'b'],
      ['b', 'a'],
    ] as const) {
      // Each worker's note reaches the database once the other worker's ask has answered: each ask
      // then reads the other's entry as not refused.
      const fails = bNoteFails && me === 'b'
      const db = throughQueries(t, async (run, text) => {
        if (text.includes(NOTE)) await asked[other].wait()
        if (fails && text.includes(NOTE)) {
          noted[me].resolve()
          throw new Error('forced: the note did not reach the database')
        }
        // b's beat writes its refusal once a's ask after its own note has answered (b read working).
        if (fails && refusal !== null && text.includes(BEAT)) await askedAfterNote.wait()
        if (aNotedFirst && me === 'a' && refusal !== null && text.includes(MARK))
          await noted.a.wait()
        const afterNote = landed[me]
        const answer = await run()
        if (text.includes(GIVE_UP_ASK)) asked[me].resolve()
        if (text.includes(GIVE_UP_ASK) && me === 'a' && afterNote) askedAfterNote.resolve()
        if (text.includes(NOTE)) {
          landed[me] = true
          noted[me].resolve()
        }
        return answer
      })
      engines.push(
        createTestEngine(t, {
          // No beat within the test (an idle worker's comes once per lease), no backstop poll.
          // b's beat, whose note failed, within 1 s (an idle worker beats once per lease length).
          config: fails
            ? { listenMode: 'poll', leaseSeconds: 1, heartbeatSeconds: 1 }
            : { listenMode: 'poll', leaseSeconds: 300, heartbeatSeconds: 100 },
          workerId: `${me}:1:abcdef`,
          deps: {
            db,
            sendBlockedForMs: () => (refusal ? 60_000 : 0),
            sendBlockedBy: () => (refusal ? block : null),
            credentialRefusal: () => refusal,
            credentialRefusalChanged: (l) => listeners.push(l),
          },
        }),
      )
    }
    // Stopped after the test too, should it end before its own stop (a timeout).
    ended.engines.push(...engines)
    try {
      for (const e of engines) await e.start()
      // Both registered and their loops turning: each start-up's reclaim (its beat) done, which b's
      // hold of its beats would otherwise catch once refused, its loop then never asking.
      await pollUntil(async () =>
        engines.every((e) => e.drainer.status().lastLoopAt !== null) &&
        (await t.pool.query('select 1 from mailer.workers')).rowCount === 2
          ? true
          : undefined,
      )
      refusal = { code: 'AADSTS7000222', forMs: 0 }
      for (const l of listeners) l()
      for (const e of engines) e.drainer.wake()
      await Promise.all([noted.a.wait(), noted.b.wait()])
      // Both entries note the refusal (b's once its beat wrote it): status says every worker is
      // refused. Bounded past a latch's bound: a latch that ran out fails it first, by name.
      await latches.watch(
        pollUntil(
          async () =>
            (await liveStats(t.db, null)).credentialRefused?.workers === 2 ? true : undefined,
          2 * LATCH_MS,
        ),
      )
      // Given up within a bound (read as they stand should it not come).
      await latches.watch(
        pollUntil(async () => ((await reservedTurns()) === 0 ? true : undefined), 5_000).catch(
          () => undefined,
        ),
      )
      expect(await pendingRows()).toEqual([{ code: 'AADSTS7000222', words: true, due: true, n: 3 }])
      expect(await reservedTurns()).toBe(0)
    } finally {
      latches.end()
      await Promise.all(ended.engines.splice(0).map((e) => e.stop()))
    }
  })

/** A turn reserved for a row sent back to wait for it (mailbox-pacing.ts reservePacing). */
const RESERVE = 'insert into mailer.mailbox_pacing as q'

test('a worker whose token came reserves no turn before its entry’s note clearing the refusal has landed: a refused worker asking meanwhile leaves the turns it paces and their rows', async () => {
  // Once armed, the worker's note clearing its refusal is held until another worker's ask has
  // answered after the first turn the worker reserved (or, should no turn be reserved while the
  // note is held, a bound: reserved 30-95 ms after the note was held, before the fix).
  let armed = false
  // The test's wait for it bounded, named should it not come.
  const noteHeld = boundedLatches(LATCH_MS).make('the note clearing the refusal, held')
  // The note's hold likewise: let go within a 500 ms look of its hold, in the test's finally too.
  const release = boundedLatches(LATCH_MS).make('the held note let go by the test')
  let asking = false
  let asked: Awaited<ReturnType<typeof pacedRowsBlocked>> | null = null
  const block = { code: 'AADSTS7000222', message: 'invalid_client: AADSTS7000222: expired' }
  const db = throughQueries(t, async (run, text) => {
    if (armed && text.includes(NOTE)) {
      noteHeld.resolve()
      await release.wait()
    }
    const answer = await run()
    if (armed && text.includes(RESERVE) && !asking) {
      asking = true
      // Another machine refused by the same secret (live, its entry noting it) asks now.
      asked = await pacedRowsBlocked(t.db, block, 'a:1:abcdef')
      release.resolve()
    }
    return answer
  })
  const r = await startOutage(t, {
    rows: 10,
    cert: await generateTestCertificate(),
    tokenFault: EXPIRED,
    ratePerMinute: 1,
    notesRefusal: true,
    // No beat within the test (an idle worker's comes once per lease): the note alone clears.
    config: { leaseSeconds: 300, heartbeatSeconds: 100 },
    deps: { db },
    gateDb: db,
  })
  try {
    // The worker is refused: its rows go back named by the refusal, its entry notes it.
    await pollUntil(async () =>
      (await count(`last_error_code = 'AADSTS7000222'`)) === 10 &&
      (await t.pool.query(`select 1 from mailer.workers where credential_refused_code is not null`))
        .rowCount === 1
        ? true
        : undefined,
    )
    await t.pool.query(
      `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds,
                                   credential_refused_code, credential_refused_since)
       values ('a:1:abcdef', 'a', 1, 'test', '', 60, 'AADSTS7000222', now())`,
    )
    // The secret fixed on this machine: its next claim's token; its ten rows, one a minute.
    armed = true
    r.fake.setFaults({})
    r.clock.advance(61_000)
    await t.pool.query(`update mailer.email_outbox set send_at = now() where status = 'pending'`)
    r.engine.drainer.wake()
    await noteHeld.wait()
    await pollUntil(async () => (asked !== null ? true : undefined), 500).catch(() => undefined)
    release.resolve()
    // One sent; the other nine sent back to turns reserved for them, but one that may wait in
    // place for the next turn (read as they stand should they not come within a bound).
    const paced = () => count(`status = 'pending' and last_error_code = 'mailbox_paced'`)
    const inPlace = () => count(`status = 'sending'`)
    await pollUntil(async () =>
      asked !== null &&
      r.engine.drainer.status().inFlight <= 1 &&
      (await paced()) + (await inPlace()) === 9
        ? true
        : undefined,
    ).catch(() => undefined)
    expect(asked as unknown).toEqual({ everyone: false, named: 0, endsInMs: expect.any(Number) })
    // The row waiting in place may be sent back to its turn between two reads (ciF: n 8 read
    // against 9 paced): the two are read until a pair agrees, bounded, then as they stand.
    let sending = await inPlace()
    let rows = await pendingRows()
    await pollUntil(async () => {
      sending = await inPlace()
      rows = await pendingRows()
      return (await inPlace()) === sending ? true : undefined
    }).catch(() => undefined)
    expect(rows).toEqual([{ code: 'mailbox_paced', words: false, due: false, n: 9 - sending }])
    // A turn each, a minute apart: none reserved again from the mailbox's turn onto one handed out.
    const gaps = await t.pool.query(
      `select min(gap) > 55 as apart from (
         select extract(epoch from send_at - lag(send_at) over (order by send_at)) as gap
           from mailer.email_outbox where status = 'pending' and last_error_code = 'mailbox_paced') g`,
    )
    expect(gaps.rows).toEqual([{ apart: true }])
    expect(await reservedTurns()).toBe(1)
    expect(r.fake.accepted).toHaveLength(1)
  } finally {
    release.resolve()
    await r.stop()
  }
})

/** Into a token's hour, past where its refresh begins in the background (10 minutes before expiry), short of its use's end. */
const REFRESH_BEGUN_MS = 3_020_000

test('a worker whose refresh is refused while its cached token serves sends and paces on: another worker refused with no token leaves its turns and rows; once its token’s use ends, they are given up', async () => {
  // A: its entry notes the refusal (as `serve` wires it), and beats every second or so, idle.
  const r = await startOutage(t, {
    rows: 10,
    cert: await generateTestCertificate(),
    tokenFault: null,
    ratePerMinute: 1,
    notesRefusal: true,
    config: { leaseSeconds: 3, heartbeatSeconds: 1 },
    options: () => ({ sendAt: new Date(Date.now() + 3600_000).toISOString() }),
  })
  const block = { code: 'AADSTS7000222', message: 'invalid_client: AADSTS7000222: expired' }
  // B: another machine with the same expired secret and no token (started since, or its own token
  // ended): live, its entry noting the refusal.
  const b = `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds,
                                         credential_refused_code, credential_refused_since)
             values ('b:1:abcdef', 'b', 1, 'test', '', 60, 'AADSTS7000222', now())
             on conflict (id) do update set last_heartbeat_at = now()`
  try {
    await rowsPaced(r)
    // The secret expires: A's refresh ahead of its token's end is refused; its cached token serves
    // on. Its next send's token begins that refresh (as warmUp's ask does here).
    r.clock.advance(REFRESH_BEGUN_MS)
    r.fake.setFaults({ token: Array.from({ length: 100 }, () => EXPIRED) })
    r.transport.warmUp()
    await pollUntil(async () =>
      r.transport.credentialRefused() &&
      (await t.pool.query(`select 1 from mailer.workers where credential_refused_code is not null`))
        .rowCount === 1
        ? true
        : undefined,
    )
    expect(r.transport.blockedForMs()).toBe(0)
    // Its entry notes until when its token serves: about the 5 minutes left of the token's use.
    const serves = await t.pool.query(
      `select credential_serves_until between now() + interval '3 minutes' and now() + interval '5 minutes'
                as noted from mailer.workers`,
    )
    expect(serves.rows).toEqual([{ noted: true }])
    // Status says the refusal at once (A's entry notes it): the early warning.
    expect((await liveStats(t.db, null)).credentialRefused?.codes).toEqual(['AADSTS7000222'])

    // B asks: A still sends, so its turns and the rows waiting for them are left alone.
    await t.pool.query(b)
    expect(await pacedRowsBlocked(t.db, block, 'b:1:abcdef')).toEqual({
      everyone: false,
      named: 0,
      endsInMs: expect.any(Number),
    })
    expect(await pendingRows()).toEqual([{ code: 'mailbox_paced', words: false, due: false, n: 9 }])
    expect(await reservedTurns()).toBe(1)

    // A's token's use ends (its last 5 minutes): A can send no more, and its next beat says so.
    r.clock.advance(10 * 60_000)
    await pollUntil(async () =>
      (
        await t.pool.query(
          `select 1 from mailer.workers where id <> 'b:1:abcdef'
              and credential_refused_code is not null and credential_serves_until is null`,
        )
      ).rowCount === 1
        ? true
        : undefined,
    )
    await t.pool.query(b)
    expect((await pacedRowsBlocked(t.db, block, 'b:1:abcdef')).everyone).toBe(true)
    expect(await pendingRows()).toEqual([{ code: 'AADSTS7000222', words: true, due: true, n: 9 }])
    expect(await reservedTurns()).toBe(0)
    expect(r.fake.accepted).toHaveLength(1)
  } finally {
    await r.stop()
  }
})

test('an entry noting a refusal with a cached token serving holds the turns until that token’s noted use passes, in database time, no note needed then', async () => {
  await turnsReserved(3)
  const block = { code: 'AADSTS7000222', message: 'invalid_client: AADSTS7000222: expired' }
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version, lease_seconds, credential_refused_code,
                                 credential_refused_since, credential_serves_until)
     values ('serving:2:abcdef', 'h', 2, 'v', 60, 'AADSTS7000222', now(), now() + interval '4 minutes')`,
  )
  const ask = () => pacedRowsBlocked(t.db, block, 'me:1:abcdef')
  // It stops reading able at the earlier of its two leases (120 s) and its token's end (4 min).
  expect(inSeconds(await ask())).toEqual({ everyone: false, named: 0, endsInS: 120 })
  await t.pool.query(
    `update mailer.workers set credential_serves_until = now() + interval '30 seconds'
      where id = 'serving:2:abcdef'`,
  )
  expect(inSeconds(await ask())).toEqual({ everyone: false, named: 0, endsInS: 30 })
  expect(await reservedTurns()).toBe(1)
  // Its use passed (as the database's clock reads it): the entry still notes the refusal, unchanged.
  await t.pool.query(
    `update mailer.workers set credential_serves_until = now() - interval '1 second'
      where id = 'serving:2:abcdef'`,
  )
  expect(await ask()).toEqual({ everyone: true, named: 3 })
  expect(await reservedTurns()).toBe(0)
})
