// A worker's registry entry notes Entra refusing its credential (sql/0198): the code and since when at each beat and as the refusal changes, kept while it stands, cleared by a token; an older binary's entry and a gone worker's count for nothing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Kysely, sql } from 'kysely'
import { type Clock, systemClock } from '../../src/clock.ts'
import type { Database } from '../../src/db/schema.ts'
import { silentLogger } from '../../src/log.ts'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'
import {
  createCredentialRefusalNote,
  noteCredentialRefusal,
} from '../../src/outbox/credential-refusal-note.ts'
import { extendLeases } from '../../src/outbox/heartbeat.ts'
import { createLeaseHeartbeat } from '../../src/outbox/lease-heartbeat.ts'
import { anotherWorkerLive } from '../../src/outbox/lone-token-wait.ts'
import { beatNow } from '../../src/outbox/registry-beat.ts'
import { createSideStatements } from '../../src/outbox/side-statements.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import type { WorkerIdentity } from '../../src/outbox/worker-identity.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  answerSecretExpired,
  EXPIRED_SECRET,
  useEntraOfExpiredSecret,
} from '../support/expired-secret.ts'
import { generateTestCertificate, graphConfigFor } from '../support/fake-graph.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { throughQueries } from '../support/through-queries.ts'
import { ManualClock, startOutage } from '../support/token-outage.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const entraOf = useEntraOfExpiredSecret()

test('the transport tells the refusal’s code and how long it has stood, across refusals, until a token comes (no cached token serving meanwhile)', async () => {
  let now = Date.now()
  const clock: Clock = { now: () => now, sleep: async () => {} }
  const entra = entraOf()
  const transport = createGraphTransport(
    graphConfigFor(entra, { clientSecret: EXPIRED_SECRET }),
    'outbox@example.com',
    { fetch, clock, log: silentLogger },
  )
  answerSecretExpired(entra, 2)
  try {
    expect(transport.credentialRefusal()).toBeNull()
    await transport.tokens.getToken().catch(() => {})
    expect(transport.credentialRefusal()).toEqual({
      code: 'AADSTS7000222',
      forMs: 0,
      servesForMs: 0,
    })
    // Past the refusal's cooldown (60 s), refused again: it has stood since the first.
    now += 61_000
    await transport.tokens.getToken().catch(() => {})
    expect(entra.tokenRequests).toHaveLength(2)
    now += 9_000
    expect(transport.credentialRefusal()).toEqual({
      code: 'AADSTS7000222',
      forMs: 70_000,
      servesForMs: 0,
    })
    // The secret fixed (the fake takes it again): the next request's token clears it.
    now += 61_000
    await transport.tokens.getToken()
    expect(transport.credentialRefusal()).toBeNull()
  } finally {
    entra.setFaults({})
  }
})

/** A worker whose beats note `refusal` (read at each beat, as worker-registration.ts's getter). */
function workerWith(
  refusal: () => { code: string; forMs: number; servesForMs?: number } | null,
): WorkerIdentity {
  return {
    id: 'host:1:abcdef',
    host: 'host',
    pid: 1,
    version: 'test',
    probeMailbox: '',
    leaseSeconds: 60,
    get credentialRefusal() {
      return refusal()
    },
  }
}

const entry = async () =>
  (
    await t.pool.query(`select credential_refused_code as code,
            extract(epoch from now() - credential_refused_since)::int as age
       from mailer.workers`)
  ).rows

test('a beat notes the code and since when (database time); a later beat keeps that since; a token clears both; a code of other characters is kept as none of them', async () => {
  let refusal: { code: string; forMs: number } | null = { code: 'AADSTS7000222', forMs: 30_000 }
  const worker = workerWith(() => refusal)
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 30 }])
  expect((await liveStats(t.db, null)).credentialRefused).toEqual({
    workers: 1,
    codes: ['AADSTS7000222'],
    since: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
    cachedTokenWorkers: 0,
    cachedTokenServesUntil: null,
  })
  expect((await liveStats(t.db, 'acme')).credentialRefused).toBeNull()
  // The beat a second later (as the process sees it) keeps the since its first noted.
  await t.pool.query(
    `update mailer.workers set credential_refused_since = credential_refused_since - interval '100 s'`,
  )
  refusal = { code: 'AADSTS7000222', forMs: 31_000 }
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 130 }])
  refusal = null
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: null, age: null }])
  expect((await liveStats(t.db, null)).credentialRefused).toEqual({
    workers: 0,
    codes: [],
    since: null,
    cachedTokenWorkers: 0,
    cachedTokenServesUntil: null,
  })
  refusal = { code: "token refused: 'contoso'", forMs: 0 }
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: 'refused', age: 0 }])
})

test('an older binary’s entry (its beat writes neither column) and a gone worker’s refused entry count for nothing', async () => {
  // An older binary's upsert, as 0084's release writes it: running beside this one in a rolling deploy.
  const older = `insert into mailer.workers (id, host, pid, version, lease_seconds)
                 values ('older:2:abcdef', 'older', 2, 'old', 60)
                 on conflict (id) do update set last_heartbeat_at = now()`
  await t.pool.query(older)
  await t.pool.query(older)
  // A worker that stopped an hour ago refused: its entry stays a day, no longer live.
  await extendLeases(
    t.db,
    workerWith(() => ({ code: 'AADSTS700027', forMs: 0 })),
    [],
    60,
  )
  await t.pool.query(
    `update mailer.workers set last_heartbeat_at = now() - interval '1 hour' where id = 'host:1:abcdef'`,
  )
  expect((await liveStats(t.db, null)).credentialRefused).toEqual({
    workers: 0,
    codes: [],
    since: null,
    cachedTokenWorkers: 0,
    cachedTokenServesUntil: null,
  })
})

/** Past the token source's wait after a refusal (a minute): Entra is asked again. */
const COOLDOWN_PASSED_MS = 61_000
/** A held statement's bound: the test's steps meanwhile are a 10 s poll at most. */
const LATCH_MS = 20_000

test('refused, refused again, then a token: the entry is written at the refusal and at the token, not at the refusal that stood, nor a lease length later', async () => {
  const entra = entraOf()
  const clock = new ManualClock()
  const transport = createGraphTransport(
    graphConfigFor(entra, { clientSecret: EXPIRED_SECRET }),
    'outbox@example.com',
    { fetch, clock, log: silentLogger },
  )
  // Two refusals, then the secret taken again (a new one, as the fake sees it).
  answerSecretExpired(entra, 2)
  // The fake is the file's: the requests of the tests before are its first.
  const before = entra.tokenRequests.length
  const asked = () => entra.tokenRequests.slice(before)
  const notes: string[] = []
  const db = throughQueries(t, (run, text) => {
    if (text.includes('update mailer.workers w')) notes.push(text)
    return run()
  })
  const changes: (string | null)[] = []
  transport.onCredentialRefusalChanged(() =>
    changes.push(transport.credentialRefusal()?.code ?? null),
  )
  const engine = createTestEngine(t, {
    // An idle worker beats once per lease length: 300 s, so no beat comes within the test.
    config: { leaseSeconds: 300, heartbeatSeconds: 100, retryBaseSeconds: 1 },
    workerId: 'host:1:noted',
    deps: {
      db,
      sender: transport.sender,
      sendBlockedForMs: transport.blockedForMs,
      sendBlockedBy: transport.blockedBy,
      tokenCame: transport.onTokenCame,
      credentialRefusal: transport.credentialRefusal,
      credentialRefusalChanged: transport.onCredentialRefusalChanged,
    },
  })
  await engine.start()
  try {
    await pollUntil(async () => ((await entry()).length > 0 ? true : undefined))
    const id = await enqueue(t)
    /** The row given back by the refusal (its settlement done), then due again, and the worker woken. */
    const dueAgain = async () => {
      await pollUntil(async () => {
        if (engine.drainer.status().inFlight > 0) return undefined
        const r = await t.pool.query(
          `select 1 from mailer.email_outbox where id = $1 and status = 'pending' and last_error_code = 'AADSTS7000222'`,
          [id],
        )
        return r.rowCount ? true : undefined
      })
      await t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
      engine.drainer.wake()
    }
    const noted = async (code: string | null) =>
      pollUntil(async () => {
        const [e] = await entry()
        return e?.code === code ? e : undefined
      }, 5_000)
    expect(await noted('AADSTS7000222')).toEqual({ code: 'AADSTS7000222', age: 0 })
    expect(notes).toHaveLength(1)

    // The next refusal, past the wait: the same code, so nothing is written.
    clock.advance(COOLDOWN_PASSED_MS)
    await dueAgain()
    await pollUntil(async () =>
      asked().length === 2 && engine.drainer.status().inFlight === 0 ? true : undefined,
    )
    expect(asked().map((r) => r.ok)).toEqual([false, false])

    // Fixed: the next request's token clears the entry, and the row goes.
    clock.advance(COOLDOWN_PASSED_MS)
    await dueAgain()
    expect(await noted(null)).toEqual({ code: null, age: null })
    await pollUntil(async () => (entra.accepted.length >= 1 ? true : undefined))
    expect(asked().map((r) => r.ok)).toEqual([false, false, true])
    // One statement per change: had the standing refusal written one, it came before the token's.
    expect(changes).toEqual(['AADSTS7000222', null])
    expect(notes).toHaveLength(2)
  } finally {
    await engine.stop()
    entra.setFaults({})
  }
})

test('a beat noting a refusal met while the cached token serves: /v1/stats and status read until when it still sends, in database time', async () => {
  await extendLeases(
    t.db,
    workerWith(() => ({ code: 'AADSTS7000222', forMs: 0, servesForMs: 600_000 })),
    [],
    60,
  )
  const { rows } = await t.pool.query(
    `select credential_serves_until as until,
            extract(epoch from credential_serves_until - now())::float8 as left_s from mailer.workers`,
  )
  // now() plus the 600 s the process said: this statement's now() a moment after the beat's.
  expect(rows.map((r) => r.left_s > 590 && r.left_s <= 600)).toEqual([true])
  expect((await liveStats(t.db, null)).credentialRefused).toMatchObject({
    workers: 1,
    cachedTokenWorkers: 1,
    cachedTokenServesUntil: (rows[0].until as Date).toISOString(),
  })
})

test('a note keeps the since a standing refusal noted, clears both without one, and writes no entry that is not there', async () => {
  let refusal: { code: string; forMs: number } | null = { code: 'AADSTS700027', forMs: 20_000 }
  const worker = workerWith(() => refusal)
  // Not registered yet (or deregistered by its stop): nothing is written, its first beat notes it.
  expect(await noteCredentialRefusal(t.db, worker)).toBe(false)
  expect(await t.pool.query('select 1 from mailer.workers')).toMatchObject({ rowCount: 0 })
  await extendLeases(
    t.db,
    workerWith(() => null),
    [],
    60,
  )
  expect(await noteCredentialRefusal(t.db, worker)).toBe(true)
  expect(await entry()).toEqual([{ code: 'AADSTS700027', age: 20 }])
  // Another code while the refusal stands keeps its since.
  refusal = { code: 'AADSTS7000222', forMs: 0 }
  await noteCredentialRefusal(t.db, worker)
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 20 }])
  refusal = null
  await noteCredentialRefusal(t.db, worker)
  expect(await entry()).toEqual([{ code: null, age: null }])
})

test('a beat read before a note and reaching the entry after it commits keeps what the note wrote; a beat begun after it writes its own', async () => {
  let refusal: { code: string; forMs: number } | null = null
  const worker = workerWith(() => refusal)
  await extendLeases(t.db, worker, [], 60)
  const beatAt = async () =>
    (await t.pool.query('select last_heartbeat_at::text as at from mailer.workers')).rows[0].at
  let notedAt = ''
  await t.db.transaction().execute(async (trx) => {
    // The beat's transaction has begun (its now()) before the refusal is learned and noted.
    await sql`select now()`.execute(trx)
    refusal = { code: 'AADSTS7000222', forMs: 0 }
    expect(await noteCredentialRefusal(t.db, worker)).toBe(true)
    notedAt = await beatAt()
    // Read before the refusal: it notes none.
    await extendLeases(
      trx,
      workerWith(() => null),
      [],
      60,
    )
  })
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 0 }])
  // Nor does the entry's beat time go back to the stale beat's.
  expect(await beatAt()).toBe(notedAt)
  refusal = null
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: null, age: null }])
})

// A reclaim carries the idle worker's beat (once per lease length); a heartbeat tick, a busy one's.
for (const via of ['reclaim', 'heartbeat'] as const)
  test(`a beat built before a refusal and sent after its note committed (waiting for a connection) does not leave the older state written: the note is written again once it answers (${via})`, async () => {
    // The worker's entry is there (a beat before), noting no refusal.
    await extendLeases(t.db, { ...workerWith(() => null), id: 'host:1:held' }, [], 60)
    let refusal: { code: string; forMs: number } | null = null
    const listeners: (() => void)[] = []
    const notes: string[] = []
    // The beat is built (the refusal read) at once, its statement held before it reaches the
    // database, as a pool with no free connection holds it: the start's reclaim, or the first
    // heartbeat tick once a send is under way.
    const beatText = via === 'reclaim' ? 'in_flight as materialized' : 'ours as materialized'
    const latches = boundedLatches(LATCH_MS)
    const beatBuilt = latches.make('the beat built and held')
    const beatSent = latches.make('the beat let go after the note')
    let beatAnswered = false
    let held = false
    const db = throughQueries(t, async (run, text) => {
      if (text.includes('update mailer.workers w')) notes.push(text)
      if (!text.includes(beatText) || held) return run()
      held = true
      beatBuilt.resolve()
      await beatSent.wait()
      const answer = await run()
      beatAnswered = true
      return answer
    })
    const engine = createTestEngine(t, {
      // An idle worker beats once per lease length: 300 s, so no reclaim comes within the test.
      config: { leaseSeconds: 300, heartbeatSeconds: via === 'reclaim' ? 100 : 1 },
      workerId: 'host:1:held',
      deps: {
        db,
        credentialRefusal: () => refusal,
        credentialRefusalChanged: (listener) => listeners.push(listener),
      },
    })
    if (via === 'heartbeat') {
      engine.sender.hold()
      held = true
    }
    await engine.start()
    try {
      if (via === 'heartbeat') {
        await enqueue(t)
        await pollUntil(async () => (engine.sender.inFlight() === 1 ? true : undefined))
        held = false
      }
      await beatBuilt.wait()
      // Entra refuses the credential now: the note is written (its own statement, not held).
      refusal = { code: 'AADSTS7000222', forMs: 0 }
      for (const l of listeners) l()
      await pollUntil(async () => ((await entry())[0]?.code === 'AADSTS7000222' ? true : undefined))
      expect(notes).toHaveLength(1)
      // The beat reaches the database now, its transaction begun after the note's: it writes the
      // state it was built with (none), as its statement says.
      beatSent.resolve()
      await pollUntil(async () => (beatAnswered ? true : undefined))
      // Within moments, not at the next beat (a lease length): the refusal noted again.
      await pollUntil(
        async () => ((await entry())[0]?.code === 'AADSTS7000222' ? true : undefined),
        5_000,
      ).catch(() => undefined)
      expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 0 }])
      expect(notes).toHaveLength(2)
    } finally {
      beatSent.resolve()
      engine.sender.release()
      await engine.stop()
    }
  })

/** The worker's note (credential-refusal-note.ts) on `db`, its side statements to wait for. */
function noteOf(db: Kysely<Database>, worker: WorkerIdentity, noted?: () => void) {
  const besides = createSideStatements()
  const note = createCredentialRefusalNote({
    db,
    worker,
    log: silentLogger,
    besides,
    stopping: new AbortController().signal,
    ...(noted && { noted }),
  })
  return { note, besides }
}

test('a busy row’s own lease statement (the wait past a tick) built before a refusal and sent after its note committed does not leave the older state written: the note is written again once it answers', async () => {
  let refusal: { code: string; forMs: number } | null = null
  const worker = workerWith(() => refusal)
  // The worker's entry is there (a beat before), noting no refusal; it holds one row's lease.
  await extendLeases(t.db, worker, [], 300)
  const id = await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: 1,
    workerId: worker.id,
    leaseSeconds: 300,
    defaultMaxAttempts: 3,
  })
  const held = new Map<string, Lease>(leases.map((l) => [l.id, l]))
  const notes: string[] = []
  // The busy row's statement (extendLeases: it waits for the row's lock; the tick's skips it) is
  // built (the refusal read) when the tick meets the row busy, and held before it reaches the
  // database, as a pool with no free connection holds it.
  const latches = boundedLatches(LATCH_MS)
  const busyBuilt = latches.make('the busy row’s statement built and held')
  const busySent = latches.make('the busy row’s statement let go after the note')
  const db = throughQueries(t, async (run, text) => {
    if (text.includes('update mailer.workers w')) notes.push(text)
    if (!text.includes('locked as materialized') || text.includes('skip locked')) return run()
    busyBuilt.resolve()
    await busySent.wait()
    return run()
  })
  const { note, besides } = noteOf(db, worker)
  const running = new Set<Promise<unknown>>()
  // One tick, called here: no timer's tick writes the entry meanwhile.
  const heartbeat = createLeaseHeartbeat(
    {
      dbName: 'test',
      db,
      worker,
      config: { leaseSeconds: 300 },
      clock: systemClock,
      log: silentLogger,
      held,
      settling: () => false,
      beatCommitted: note.beatCommitted,
    },
    (p) => {
      running.add(p)
      return p
    },
    () => false,
  )
  // An application's open UPDATE of the row: the tick finds it busy and leaves it to the wait.
  const app = await holdRowLocked(t.pool, id, 'update')
  try {
    await heartbeat()
    await busyBuilt.wait()
    // Entra refuses the credential now: the note is written (its own statement, not held).
    refusal = { code: 'AADSTS7000222', forMs: 0 }
    note.changed()
    await besides.settled()
    expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 0 }])
    expect(notes).toHaveLength(1)
  } finally {
    await app.end('commit')
    // The busy row's statement reaches the database now, its transaction begun after the note's:
    // it writes the state it was built with (none), as its statement says.
    busySent.resolve()
  }
  await Promise.all(running)
  // Its answer told the note, which wrote the refusal again: awaited, not a lease length later.
  await besides.settled()
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 0 }])
  expect(notes).toHaveLength(2)
  // Its lease was extended by that statement.
  const left = await t.pool.query<{ s: number }>(
    `select extract(epoch from lease_expires_at - now())::float8 as s from mailer.email_outbox where id = $1`,
    [id],
  )
  expect(left.rows[0]!.s).toBeGreaterThan(200)
})

test('a refusal a beat writes after the note of it failed tells the worker as the note would have (an ask made before it is owed again, block-naming.ts); a beat writing it again tells nothing', async () => {
  let refusal: { code: string; forMs: number } | null = null
  const worker = workerWith(() => refusal)
  // The worker's entry is there (a beat before), noting no refusal.
  await extendLeases(t.db, worker, [], 60)
  // The note's statement fails (a connection lost): the next beat writes the same.
  const db = throughQueries(t, async (run, text) => {
    if (text.includes('update mailer.workers w')) throw new Error('Connection terminated')
    return run()
  })
  let noted = 0
  const { note, besides } = noteOf(db, worker, () => noted++)
  refusal = { code: 'AADSTS7000222', forMs: 0 }
  note.changed()
  await besides.settled()
  expect(await entry()).toEqual([{ code: null, age: null }])
  expect(noted).toBe(0)
  // The next beat (a reclaim's, an idle worker's once per lease) writes it, and tells the note.
  const beat = beatNow(worker)
  await extendLeases(t.db, beat, [], 60)
  note.beatCommitted(beat)
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 0 }])
  expect(noted).toBe(1)
  // The beats after it write what the entry notes already: nothing more, no statement.
  for (let i = 0; i < 2; i++) {
    const again = beatNow(worker)
    await extendLeases(t.db, again, [], 60)
    note.beatCommitted(again)
  }
  await besides.settled()
  expect(noted).toBe(1)
})

/** Into a token's hour, past where its refresh begins in the background (10 minutes before expiry), short of its use's end. */
const REFRESH_BEGUN_MS = 3_020_000
/** Entra's answer to an expired client secret (a certificate's app here: the code is what is kept). */
const secretExpiredCert = { status: 401, error: 'invalid_client', aadsts: 7000222 }

test('a Graph 401 that drops the cached token a refused worker sent with notes at once that no token serves it: another worker no longer reads it as able to send; a healthy send writes nothing', async () => {
  const notes: string[] = []
  const r = await startOutage(t, {
    rows: 1,
    cert: await generateTestCertificate(),
    tokenFault: null,
    notesRefusal: true,
    // An idle worker beats once per lease length: 300 s, so no beat comes within the test.
    config: { leaseSeconds: 300, heartbeatSeconds: 100 },
    deps: {
      db: throughQueries(t, (run, text) => {
        if (text.includes('update mailer.workers w')) notes.push(text)
        return run()
      }),
    },
  })
  const servesUntil = async () =>
    (
      await t.pool.query(
        `select credential_refused_code as code, credential_serves_until > now() as serves
           from mailer.workers`,
      )
    ).rows
  try {
    await pollUntil(async () => (r.fake.accepted.length === 1 ? true : undefined))
    // A healthy send writes nothing into the entry.
    expect(notes).toHaveLength(0)
    // The secret expires: the refresh ahead of the token's end is refused, the cached token serves on.
    r.clock.advance(REFRESH_BEGUN_MS)
    r.fake.setFaults({ token: Array.from({ length: 100 }, () => secretExpiredCert) })
    r.transport.warmUp()
    expect(
      await pollUntil(async () => {
        const e = await servesUntil()
        return e[0]?.code === 'AADSTS7000222' ? e : undefined
      }),
    ).toEqual([{ code: 'AADSTS7000222', serves: true }])
    expect(await anotherWorkerLive(t.db, 'b:1:abcdef')).toBe(true)
    expect(notes).toHaveLength(1)

    // Graph refuses that token (revoked): the send drops it, and the refusal gives no other.
    r.fake.revokeTokens('invalid')
    await enqueue(t)
    r.engine.drainer.wake()
    // Given back named by the refusal: its send met Graph's 401, the token source's refusal after it.
    await pollUntil(async () => {
      if (r.engine.drainer.status().inFlight > 0) return undefined
      const given = await t.pool.query(
        `select 1 from mailer.email_outbox where status = 'pending' and last_error_code = 'AADSTS7000222'`,
      )
      return given.rowCount === 1 ? true : undefined
    })
    expect(r.fake.accepted).toHaveLength(1)
    expect(r.transport.credentialRefusal()?.servesForMs).toBe(0)
    // Within moments, not at the next beat (a lease length): read as it stands should it not come.
    await pollUntil(
      async () => ((await servesUntil())[0]?.serves === null ? true : undefined),
      5_000,
    ).catch(() => undefined)
    expect(await servesUntil()).toEqual([{ code: 'AADSTS7000222', serves: null }])
    expect(await anotherWorkerLive(t.db, 'b:1:abcdef')).toBe(false)
    expect(notes).toHaveLength(2)
  } finally {
    await r.stop()
  }
})

test('a beat built while the cached token served and sent after the note of its drop committed does not leave the token noted as serving: the note is written again once it answers', async () => {
  let refusal = { code: 'AADSTS7000222', forMs: 0, servesForMs: 240_000 }
  const worker = workerWith(() => refusal)
  const serves = async () =>
    (await t.pool.query('select credential_serves_until > now() as serves from mailer.workers'))
      .rows
  await extendLeases(t.db, worker, [], 60)
  expect(await serves()).toEqual([{ serves: true }])
  const notes: string[] = []
  const db = throughQueries(t, (run, text) => {
    if (text.includes('update mailer.workers w')) notes.push(text)
    return run()
  })
  const { note, besides } = noteOf(db, worker)
  // A beat is built (the refusal read, its token serving), then held (a pool with no free connection).
  const beat = beatNow(worker)
  // Graph's 401 drops the token: the note writes that none serves.
  refusal = { ...refusal, servesForMs: 0 }
  note.changed()
  await besides.settled()
  expect(await serves()).toEqual([{ serves: null }])
  // The beat reaches the database now, its transaction begun after the note's: it writes the state
  // it was built with, as its statement says; told of it, the note writes the state now again.
  await extendLeases(db, beat, [], 60)
  note.beatCommitted(beat)
  await besides.settled()
  expect(await serves()).toEqual([{ serves: null }])
  expect(notes).toHaveLength(2)
  // The beats after it write what the entry notes already: no statement more.
  const again = beatNow(worker)
  await extendLeases(db, again, [], 60)
  note.beatCommitted(again)
  await besides.settled()
  expect(notes).toHaveLength(2)
})
