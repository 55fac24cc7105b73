// The worker's pool: idle connections go back to the server; one stays open unless the LISTEN session stands in for it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import type pg from 'pg'
import { openDb } from '../../src/db/open.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { primeNotifiedClaim } from '../../src/outbox/claim.ts'
import { pickupPrimer } from '../../src/outbox/pickup-primes.ts'
import { checkSchemas } from '../../src/schema-check-at-start.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

test('an idle pool closes its extra connections and keeps one open', async () => {
  const h = openDb({ name: 'pool', url: t.url, log: silentLogger, idleTimeoutMs: 20 })
  try {
    const pid = async () =>
      (await h.pool.query<{ pid: number }>('select pg_backend_pid() as pid, pg_sleep(0.05)'))
        .rows[0]!.pid
    // 'remove' is emitted once a closed connection has ended.
    let removed = 0
    h.pool.on('remove', () => {
      removed += 1
    })
    const busy = await Promise.all([pid(), pid(), pid()])
    expect(new Set(busy).size).toBe(3)
    await pollUntil(async () => (removed === 2 ? true : undefined), 5_000, 5)
    // Five idle timeouts later the last one is still open (a pool with no minimum closes it too).
    await Bun.sleep(100)
    expect(removed).toBe(2)
    expect(h.pool.totalCount).toBe(1)
    expect(busy).toContain(await pid())
  } finally {
    await h.close()
  }
})

test('without a shared session the connection the pool opens alone, the one it keeps, has the claim primed after its first statement; one a busy spell adds beside it has not', async () => {
  const h = openDb({
    name: 'pool',
    url: t.url,
    log: silentLogger,
    idleTimeoutMs: 20,
    prime: primeNotifiedClaim,
  })
  try {
    const names = async (c: { query: typeof h.pool.query } = h.pool) =>
      (
        await c.query<{ pid: number; names: string[] }>(
          'select pg_backend_pid() as pid, array(select name from pg_prepared_statements) as names',
        )
      ).rows[0]!
    // Its first statement goes ahead of the prime, queued as the connection is released: the
    // next one finds the claim primed.
    const kept = await names()
    expect(kept.names).toEqual([])
    expect(await names()).toEqual({ pid: kept.pid, names: ['outbox_claim_notified'] })
    // A busy spell: the kept one busy, two more connections beside it, opened unprimed.
    const held = [await h.pool.connect(), await h.pool.connect(), await h.pool.connect()]
    const all = [await names(held[0]), await names(held[1]), await names(held[2])]
    for (const c of held) c.release()
    const beside = all.filter((x) => x.pid !== kept.pid)
    expect(beside.length).toBe(2)
    expect(beside.map((x) => x.names)).toEqual([[], []])
    // The kept one goes (its lifetime's end, a network): its replacement, opened alone, is primed.
    await pollUntil(async () => (h.pool.totalCount === 1 ? true : undefined), 5_000, 5)
    const removed = new Promise((resolve) => h.pool.once('remove', resolve))
    await t.pool.query(
      'select pg_terminate_backend(pid) from pg_stat_activity where pid = any($1)',
      [[kept.pid, ...beside.map((x) => x.pid)]],
    )
    await removed
    await pollUntil(async () => (h.pool.totalCount === 0 ? true : undefined), 5_000, 5)
    const next = await names()
    expect(next.pid).not.toBe(kept.pid)
    expect(await names()).toEqual({ pid: next.pid, names: ['outbox_claim_notified'] })
  } finally {
    await h.close()
  }
})

test('beside a shared session every connection the pool opens gets the pickup primed', async () => {
  const h = openDb({
    name: 'pool',
    url: t.url,
    log: silentLogger,
    shareListenSession: true,
    // A Graph worker with MAIL_FROM: its claims are guarded by MAIL_FROM's pause (sql/0062).
    prime: pickupPrimer({ slotTake: true, lastCheck: 'with-pause', guardedClaim: true }),
  })
  try {
    // A statement finds the session busy (a settlement on it) and takes the pool: the connections
    // opened for the start's statements, or for it, run the next pickups' claim and check.
    const pids = async (held: pg.PoolClient[]) =>
      Promise.all(
        held.map((c) =>
          c
            .query<{ pid: number; names: string[] }>(
              'select pg_backend_pid() as pid, array(select name from pg_prepared_statements order by name) as names',
            )
            .then((r) => r.rows[0]!),
        ),
      )
    const opened = [await h.pool.connect(), await h.pool.connect()]
    const first = await pids(opened).finally(() => {
      for (const c of opened) c.release()
    })
    // Each one's first statement went ahead of its prime, queued at its release.
    expect(first.map((x) => x.names)).toEqual([[], []])
    // Its statements are queued at once, ahead of the next pickup's.
    let next: { pid: number; names: string[] }[] = []
    await pollUntil(
      async () => {
        const again = [await h.pool.connect(), await h.pool.connect()]
        next = await pids(again).finally(() => {
          for (const c of again) c.release()
        })
        return next.every((x) => x.names.length === 2) ? true : undefined
      },
      5_000,
      5,
    ).catch(() => {})
    expect(next.map((x) => x.pid).sort()).toEqual(first.map((x) => x.pid).sort())
    expect(next.map((x) => x.names)).toEqual([
      ['outbox_claim_notified_unowed', 'outbox_start_sends_unpaused'],
      ['outbox_claim_notified_unowed', 'outbox_start_sends_unpaused'],
    ])
  } finally {
    await h.close()
  }
})

/** A pool beside a shared session whose prime, one statement, notes 'prime' in `answered` once answered. */
function openNotingPrime(answered: string[]) {
  return openDb({
    name: 'pool',
    url: t.url,
    log: silentLogger,
    shareListenSession: true,
    prime: async (c) => {
      await c.query('select 1')
      answered.push('prime')
    },
  })
}

test("a new connection's first statement is answered ahead of its prime, and the next statement on it after the prime", async () => {
  // A start's schema check and first readiness probe open pool connections: queued behind a prime
  // (a Graph worker's claim, slot take and last check, cold) they held a binary's /readyz back.
  const answered: string[] = []
  const h = openNotingPrime(answered)
  try {
    for (const step of ['first', 'next']) {
      const c = await h.pool.connect()
      try {
        await c.query('select 1')
        answered.push(step)
      } finally {
        c.release()
      }
    }
    expect(h.pool.totalCount).toBe(1)
    expect(answered).toEqual(['first', 'prime', 'next'])
  } finally {
    await h.close()
  }
})

test("serve's schema check at start is answered ahead of its connection's prime: the statement-mode probe and the schema read on one connection", async () => {
  // The probe released the connection it opened, which queued the prime (a Graph worker's claim,
  // slot take and last check, cold) ahead of the schema read: a start waited for it before its
  // drainers and HTTP listener began.
  const answered: string[] = []
  const h = openNotingPrime(answered)
  try {
    expect(await checkSchemas([h], silentLogger)).toEqual({
      current: ['pool'],
      takingWrites: ['pool'],
      notUtf8: {},
    })
    // Its answer stands for readiness as one of the route's would (the first probe asks nothing).
    expect(h.statements.answeredAt()).not.toBeNull()
    answered.push('schema read')
    await pollUntil(async () => (answered.length === 2 ? true : undefined), 5_000, 5)
    expect({ answered, connections: h.pool.totalCount }).toEqual({
      answered: ['schema read', 'prime'],
      connections: 1,
    })
  } finally {
    await h.close()
  }
})

test('a pool that shares the LISTEN session closes its last connection too', async () => {
  const h = openDb({
    name: 'pool',
    url: t.url,
    log: silentLogger,
    idleTimeoutMs: 20,
    shareListenSession: true,
  })
  try {
    let removed = 0
    h.pool.on('remove', () => {
      removed += 1
    })
    await Promise.all([1, 2, 3].map(() => h.pool.query('select pg_sleep(0.05)')))
    await pollUntil(async () => (removed === 3 ? true : undefined), 5_000, 5)
    expect(h.pool.totalCount).toBe(0)
    expect(h.listenSession).not.toBeNull()
  } finally {
    await h.close()
  }
})

test('a connection lost while a statement holds it fails that statement only: nothing goes unhandled', async () => {
  const h = openDb({ name: 'pool', url: t.url, log: silentLogger })
  try {
    // A failover or an admin's pg_terminate_backend ends the session in the middle of a transaction.
    // Without a listener of its own, the checked-out client's 'error' event is an uncaught error
    // (a raw stack trace on stderr outside the JSON log; bun test fails the test for it).
    const txn = h.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)
      await t.pool.query('select pg_terminate_backend($1)', [rows[0]!.pid])
      await pollUntil(async () => {
        const r = await t.pool.query('select 1 from pg_stat_activity where pid = $1', [
          rows[0]!.pid,
        ])
        return r.rowCount === 0 ? true : undefined
      }, 5_000)
      await sql`select 1`.execute(trx)
    })
    await expect(txn).rejects.toThrow()
    // The pool drops the dead connection and answers again.
    const { rows } = await h.pool.query<{ one: number }>('select 1 as one')
    expect(rows[0]!.one).toBe(1)
  } finally {
    await h.close()
  }
})

test('a connection that ends in an error while the pool closes (its server stopping, as dev stops its Postgres) is no warning', async () => {
  const warnings: unknown[] = []
  const h = openDb({
    name: 'pool',
    url: t.url,
    log: createLogger('warn', (l) => warnings.push(JSON.parse(l))),
  })
  const { rows } = await h.pool.query<{ pid: number }>('select pg_backend_pid() as pid')
  const pid = rows[0]!.pid
  // 'remove' is emitted once the closed connection has ended (after any error on it).
  const ended = new Promise((resolve) => h.pool.once('remove', resolve))
  // A backend slow to read the pool's goodbye (a loaded machine): stopped, it reads nothing.
  process.kill(pid, 'SIGSTOP')
  try {
    await h.close()
    // The server shuts down before that backend read it (dev's Ctrl+C stops Postgres right after
    // the engine): told to end first, it answers 57P01 (admin shutdown) to a client we are ending.
    await t.pool.query('select pg_terminate_backend($1)', [pid])
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  await ended
  expect(warnings).toEqual([])
})

test("a connection's prime runs whole ahead of the next user's transaction: none of its statements inside it", async () => {
  // One connection, so the transaction waits for the very one whose prime its release queues.
  const h = openDb({
    name: 'pool',
    url: t.url,
    log: silentLogger,
    maxConnections: 1,
    prime: pickupPrimer({ slotTake: true, lastCheck: 'plain', guardedClaim: false }),
  })
  try {
    const c = await h.pool.connect()
    await c.query('select 1')
    // An API request's transaction (withStatementTimeout) takes the connection at its release.
    const inside = h.db.transaction().execute(async (trx) => {
      await sql`select 1`.execute(trx)
      await sql`select 2`.execute(trx)
      const { rows } = await sql<{ rel: string; mode: string }>`
        select relation::regclass::text as rel, mode from pg_locks
         where pid = pg_backend_pid() and locktype = 'relation'
           and relation in ('mailer.email_outbox'::regclass, 'mailer.send_slots'::regclass)
         order by 1, 2`.execute(trx)
      return rows
    })
    await pollUntil(async () => (h.pool.waitingCount === 1 ? true : undefined))
    c.release()
    // The transaction only read: a lock on the outbox or the slots is a prime's statement in it.
    expect(await inside).toEqual([])
  } finally {
    await h.close()
  }
})
