// A pickup by the row its notification names (sql/0030): the notification's payload, claim_notified's rules, the drainer's use of it.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { claimBatch, primeNotifiedClaim } from '../../src/outbox/claim.ts'
import { notifiedRowId } from '../../src/outbox/listen-session.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { payloadsHeard } from '../support/notifications.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MESSAGE = `jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')), 'subject', 's', 'text', 't')`
const params = { workerId: 'w1', leaseSeconds: 30, defaultMaxAttempts: 3, markStarted: true }
const claimNamed = (id: string, limit = 10, markStarted = true) =>
  claimBatch(t.db, { ...params, limit, markStarted, notifiedId: id })

const insertOne = async (c: pg.ClientBase) =>
  (
    await c.query<{ id: string }>(
      `insert into mailer.email_outbox (message) values (${MESSAGE}) returning id`,
    )
  ).rows[0]!.id

describe('the notification', () => {
  test('names the row of a transaction that inserted one row', async () => {
    let id = ''
    const heard = await payloadsHeard(t, async (c) => {
      id = await insertOne(c)
    })
    expect(heard).toEqual([id])
    // enqueue_email inserts one row the same way.
    let enqueued = ''
    expect(
      await payloadsHeard(t, async () => {
        enqueued = await enqueue(t)
      }),
    ).toEqual([enqueued])
  })

  test('a statement of many rows sends one empty hint', async () => {
    const heard = await payloadsHeard(t, (c) =>
      c.query(
        `insert into mailer.email_outbox (message) select ${MESSAGE} from generate_series(1, 20000)`,
      ),
    )
    expect(heard).toEqual([''])
  })

  test('a transaction of 20,000 one-row statements sends the first id and one empty hint, no more', async () => {
    let first = ''
    const heard = await payloadsHeard(t, async (c) => {
      await c.query('begin')
      first = await insertOne(c)
      await c.query(`do $$ begin
        for i in 2..20000 loop
          insert into mailer.email_outbox (message) values ('{"to": "a@example.com", "subject": "s", "text": "t"}');
        end loop;
      end $$`)
      await c.query('commit')
    })
    expect(heard).toEqual([first, ''])
    expect(
      Number((await t.pool.query('select count(*) from mailer.email_outbox')).rows[0].count),
    ).toBe(20000)
  })

  test('a rolled-back savepoint takes its row’s note with it; the next transaction starts afresh', async () => {
    let kept = ''
    const heard = await payloadsHeard(t, async (c) => {
      await c.query('begin')
      await c.query('savepoint s')
      await insertOne(c)
      await c.query('rollback to savepoint s')
      kept = await insertOne(c)
      await c.query('commit')
    })
    expect(heard).toEqual([kept])
    let next = ''
    expect(
      await payloadsHeard(t, async (c) => {
        next = await insertOne(c)
      }),
    ).toEqual([next])
  })

  test('the listener takes an id from a payload, and nothing from an empty or foreign one', () => {
    expect(notifiedRowId('42')).toBe('42')
    expect(notifiedRowId('123456789012345678')).toBe('123456789012345678')
    for (const p of ['', undefined, '0', '-1', '1e3', ' 1', '99999999999999999999', 'x']) {
      expect(notifiedRowId(p)).toBeUndefined()
    }
  })
})

describe('claim_notified', () => {
  test('takes the named row alone, as claim_batch would', async () => {
    const id = await enqueue(t)
    // A row behind it is left to the next claim (claim_batch would take both: this is the row's own claim).
    const behind = await enqueue(t)
    const claim = await claimNamed(id)
    expect(claim.leases.map((l) => l.id)).toEqual([id])
    expect(claim.nextDueInMs).toBeNull()
    expect((await rowOf(t, behind)).status).toBe('pending')
    expect(claim.leases[0]).toMatchObject({
      tenant: 'default',
      attempt: 1,
      correlationId: null,
      template: null,
      sourceRow: null,
      expired: false,
      cancelRequested: false,
      ambiguous: false,
      started: true,
    })
    expect(claim.leases[0]!.message).toMatchObject({ subject: 'Hello' })
    const row = await rowOf(t, id)
    expect(row).toMatchObject({ status: 'sending', attempts: 1, lease_owner: 'w1' })
    expect(row.lease_token).toBe(claim.leases[0]!.token)
    expect(row.send_started_at).not.toBeNull()
    expect(row.lease_expires_at.getTime()).toBeGreaterThan(Date.now() + 20_000)
  })

  test('claim order holds: a more urgent or earlier row pending goes first', async () => {
    const urgent = await enqueue(t, undefined, { priority: -1 })
    const named = await enqueue(t)
    expect((await claimNamed(named, 1)).leases.map((l) => l.id)).toEqual([urgent])
    expect((await rowOf(t, named)).status).toBe('pending')
    const earlier = await enqueue(t)
    const later = await enqueue(t)
    expect((await claimNamed(later, 1)).leases.map((l) => l.id)).toEqual([named])
    expect((await claimNamed(later, 10)).leases.map((l) => l.id)).toEqual([earlier, later])
  })

  test('a more urgent row scheduled later does not hold the named row back, and is reported due', async () => {
    await enqueue(t, undefined, {
      priority: -5,
      sendAt: new Date(Date.now() + 60_000).toISOString(),
    })
    const named = await enqueue(t)
    const claim = await claimNamed(named)
    expect(claim.leases.map((l) => l.id)).toEqual([named])
    expect(claim.nextDueInMs).toBeGreaterThan(50_000)
    expect(claim.nextDueInMs).toBeLessThanOrEqual(60_000)
  })

  test('a named row locked elsewhere, not due, gone or never inserted is not taken; others are', async () => {
    const locked = await enqueue(t)
    const free = await enqueue(t)
    const held = await holdRowLocked(t.pool, locked)
    try {
      expect((await claimNamed(locked)).leases.map((l) => l.id)).toEqual([free])
    } finally {
      await held.end('rollback')
    }
    const scheduled = await enqueue(t, undefined, {
      sendAt: new Date(Date.now() + 60_000).toISOString(),
    })
    const claim = await claimNamed(scheduled)
    expect(claim.leases.map((l) => l.id)).toEqual([locked])
    expect(claim.nextDueInMs).toBeGreaterThan(50_000)
    expect((await rowOf(t, scheduled)).status).toBe('pending')
    // Taken already, or an id no row has: nothing to take.
    expect((await claimNamed(locked)).leases).toEqual([])
    expect((await claimNamed('999999999')).leases).toEqual([])
  })

  test('a named row another worker took ends the claim: no claim_batch after it', async () => {
    const named = await enqueue(t)
    expect((await claimNamed(named)).leases.map((l) => l.id)).toEqual([named])
    // A due row nobody named (as one a rolled-back claim left): claim_batch would take it.
    const unnamed = await enqueue(t)
    const again = await claimNamed(named)
    expect(again).toEqual({ leases: [], nextDueInMs: null })
    expect((await rowOf(t, unnamed)).status).toBe('pending')
    // Still pending but locked by another claim in flight: claim_batch looks (and skips it).
    const held = await holdRowLocked(t.pool, unnamed)
    try {
      const other = await enqueue(t)
      expect((await claimNamed(unnamed)).leases.map((l) => l.id)).toEqual([other])
    } finally {
      await held.end('rollback')
    }
  })

  test('an expired, cancelled or interrupted row is flagged and not marked started, as by claim_batch', async () => {
    const expired = await enqueue(t)
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() - interval '2 min', expires_at = now() - interval '1 min' where id = $1`,
      [expired],
    )
    expect((await claimNamed(expired)).leases[0]).toMatchObject({
      id: expired,
      expired: true,
      started: false,
    })
    const cancelled = await enqueue(t)
    await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
      cancelled,
    ])
    expect((await claimNamed(cancelled)).leases[0]).toMatchObject({
      id: cancelled,
      cancelRequested: true,
      started: false,
    })
    const interrupted = await enqueue(t)
    await t.pool.query(
      `update mailer.email_outbox set send_started_at = now() - interval '1 min', attempts = 1 where id = $1`,
      [interrupted],
    )
    expect((await claimNamed(interrupted)).leases[0]).toMatchObject({
      id: interrupted,
      attempt: 2,
      ambiguous: true,
      started: false,
    })
    // A row with an expiry is judged again in its send slot (sql/0017), as claim_batch leaves it.
    const expiring = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    })
    expect((await claimNamed(expiring)).leases[0]).toMatchObject({ id: expiring, started: false })
  })

  test('without marking sends started it commits without a flush, as claim_unflushed', async () => {
    const c = await t.pool.connect()
    const modeAfterClaim = async (markStarted: boolean) => {
      const id = await enqueue(t)
      await c.query('begin')
      const r = await c.query<{ claim: unknown[] | null }>(
        `select mailer.claim_notified($1, 'w1', gen_random_uuid(), 30, $2, 3) as claim`,
        [id, markStarted],
      )
      const mode = (await c.query(`select current_setting('synchronous_commit') as m`)).rows[0].m
      await c.query('commit')
      return { claimed: r.rows[0]!.claim?.length ?? 0, mode }
    }
    try {
      // The test cluster runs with synchronous_commit off; production's default is on.
      await c.query('set synchronous_commit = on')
      expect(await modeAfterClaim(false)).toEqual({ claimed: 1, mode: 'off' })
      expect(await modeAfterClaim(true)).toEqual({ claimed: 1, mode: 'on' })
    } finally {
      await c.query('reset synchronous_commit')
      c.release()
    }
  })

  test('reads a few pages however large the table and its backlog when its session planned it', async () => {
    const client = new pg.Client({ connectionString: t.url })
    await client.connect()
    const claimOne = (id: string) =>
      `select mailer.claim_notified(${id}, 'w1', gen_random_uuid(), 30, true, 3) as claim`
    try {
      await t.pool.query('alter table mailer.email_outbox set (autovacuum_enabled = off)')
      await client.query('analyze mailer.email_outbox')
      for (let i = 0; i < 8; i++) await client.query(claimOne(await enqueue(t)))
      // A large kept table, and scheduled rows in the claim index: the check reads its first entry.
      await t.pool.query(
        `insert into mailer.email_outbox (message, status, attempts, sent_at)
         select ${MESSAGE}, 'sent', 1, now() from generate_series(1, 20000)`,
      )
      await t.pool.query(
        `insert into mailer.email_outbox (message, priority, send_at)
         select ${MESSAGE}, 5, now() + interval '1 day' from generate_series(1, 20000)`,
      )
      const id = await enqueue(t)
      // The claim's own reads: the blocks of each mailer table, index and TOAST table this session
      // fetched inside the claim's transaction (a backend flushes no stats within one). Not EXPLAIN's
      // buffers: they count catalog reads too when the function's statement is planned again in it,
      // after the session's caches were reset (other files' DDL overflowed the shared invalidation
      // queue while it waited: 117 in CI under load, 1294 forced). Per relation, as a new plan also
      // reads each index's first pages (4 blocks each, 50 in all); a claim walking an index or the
      // table reads far more of one (2060 of the table without email_outbox_claim_idx).
      const blocksRead = async () =>
        new Map(
          (
            await client.query<{ name: string; blocks: number }>(
              `select c.relname as name, pg_stat_get_xact_blocks_fetched(c.oid)::int as blocks
                 from pg_class c
                where c.relnamespace = 'mailer'::regnamespace
                   or c.oid in (select reltoastrelid from pg_class where relnamespace = 'mailer'::regnamespace)`,
            )
          ).rows.map((r) => [r.name, r.blocks]),
        )
      await client.query('begin')
      const before = await blocksRead()
      await client.query(claimOne(id))
      const after = await blocksRead()
      const claimRead = Math.max(...[...after].map(([name, n]) => n - (before.get(name) ?? 0)))
      await client.query('commit')
      const table = await client.query<{ pages: number }>(
        `select (pg_relation_size('mailer.email_outbox') / current_setting('block_size')::int)::int as pages`,
      )
      expect(table.rows[0]!.pages).toBeGreaterThan(1000)
      expect(claimRead).toBeLessThan(20)
      expect((await rowOf(t, id)).status).toBe('sending')
    } finally {
      await t.pool.query('alter table mailer.email_outbox reset (autovacuum_enabled)')
      await client.end()
    }
  })
})

describe('the drainer', () => {
  test('claims a row its notification names by that id, and any other news by claim_batch', async () => {
    const named: (string | null)[] = []
    // Each row's claim, by the id it named (null: claim_batch).
    const takenBy = new Map<string, string | null>()
    let inFlight = 0
    let done = 0
    const e = createTestEngine(t, {
      deps: {
        claim: async (db, p) => {
          named.push(p.notifiedId ?? null)
          inFlight++
          try {
            const claimed = await claimBatch(db, p)
            for (const l of claimed.leases) takenBy.set(l.id, p.notifiedId ?? null)
            return claimed
          } finally {
            inFlight--
            done++
          }
        },
      },
    })
    await e.start()
    try {
      // The start's sweep is news too (null), and a row whose notification arrives before that
      // sweep's claim has begun joins it: claim_batch takes it, and nothing names it (a slow first
      // claim on a loaded machine, seen in CI). So the row goes in once the loop has claimed and
      // waits: the next claim begins at once after one returns, within the same macrotask.
      await pollUntil(async () => (done >= 1 && inFlight === 0) || undefined)
      const one = await enqueue(t)
      await e.events.waitFor(settledFor(one, 'sent'), 20_000)
      // Its notification sent a claim naming it (an idle loop's news was none).
      expect(named).toContain(one)
      // Two rows in one transaction: the first's id, then '': the claim looks for itself.
      const c = await t.pool.connect()
      let two: string[] = []
      try {
        await c.query('begin')
        two = [await insertOne(c), await insertOne(c)]
        await c.query('commit')
      } finally {
        c.release()
      }
      await e.events.waitFor(settledFor(two[0]!, 'sent'), 20_000)
      await e.events.waitFor(settledFor(two[1]!, 'sent'), 20_000)
      // Both arrive in one read as a rule (a claim names neither); were they split, the first could
      // be claimed by its id before the second arrives. Either way the second row needs claim_batch.
      expect(named.slice(named.indexOf(one) + 1)).not.toContain(two[1])
      expect(named.slice(named.indexOf(one) + 1)).toContain(null)
      expect(takenBy.get(two[1]!)).toBeNull()
    } finally {
      await e.stop()
    }
  })
})

describe('a named row not due yet', () => {
  // First in claim order (nothing pending ahead of it, or it is more urgent than what is), it is
  // still not taken before its send_at: the named claim's own due-time filter is all that stops it.
  test('is not taken early when it is first in claim order, alone or more urgent than a due row', async () => {
    const inAMinute = new Date(Date.now() + 60_000).toISOString()
    const alone = await enqueue(t, undefined, { sendAt: inAMinute })
    const claim = await claimNamed(alone)
    expect(claim.leases).toEqual([])
    expect(claim.nextDueInMs).toBeGreaterThan(50_000)
    const due = await enqueue(t)
    const urgent = await enqueue(t, undefined, { priority: -5, sendAt: inAMinute })
    expect((await claimNamed(urgent)).leases.map((l) => l.id)).toEqual([due])
    const rows = await t.pool.query(
      'select id::text, status from mailer.email_outbox where id = any($1) order by id',
      [[alone, urgent]],
    )
    expect(rows.rows).toEqual([
      { id: alone, status: 'pending' },
      { id: urgent, status: 'pending' },
    ])
  })
})

describe("a session's prime", () => {
  // The prime runs claim_notified for a row that must not exist. The id column is an identity
  // from 1, but an insert by hand may override it (`overriding system value`): 0 and -1 included.
  const prime = async () => {
    const client = await t.pool.connect()
    try {
      await primeNotifiedClaim(client)
    } finally {
      client.release()
    }
  }
  const untouched = (id: string) => ({ id, status: 'pending', attempts: 0, lease_owner: null })
  const rows = async () =>
    (
      await t.pool.query(
        'select id::text, status, attempts, lease_owner from mailer.email_outbox order by id',
      )
    ).rows

  for (const id of ['0', '-1'])
    test(`takes no row, not one a hand wrote with id ${id}, pending, due and first in claim order`, async () => {
      await t.pool.query(
        `insert into mailer.email_outbox (id, message) overriding system value values ($1, ${MESSAGE})`,
        [id],
      )
      await prime()
      expect(await rows()).toEqual([untouched(id)])
    })
})
