// Lock order: the engine's statements and the API's bulk actions lock shared rows in id order, or never wait, so none deadlock.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { cancelMatching } from '../../src/outbox/bulk-cancel.ts'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'
import { extendLeases } from '../../src/outbox/heartbeat.ts'
import { markSent } from '../../src/outbox/mark-sent.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import { BUSY_OUTCOME, type SettleItem } from '../../src/outbox/settle-item.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'
import { holdRowLocked, type RowsHeld } from '../support/hold-row-locked.ts'
import { untilLockWaits } from '../support/lock-waits.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const MESSAGE = `'{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb`
const ROUNDS = 5
const ROWS = 200
/** The row a third session holds while the two racers line up on either side of it. */
const MIDDLE = ROWS / 2
const WORKER = { id: 'w1', host: 'test', pid: 1, version: 'test' }

const t = useTestDb()

type Db = ReturnType<typeof openDb>['db']
type Racer = (db: Db, leases: Lease[]) => Promise<unknown>

// Inputs in the opposite of id order, as the order sends finish or asked for their check can be.
const lastFirst = (leases: Lease[]) => [...leases].sort((a, b) => Number(b.id) - Number(a.id))
const item = (l: Lease, kind: 'sent' | 'released'): SettleItem => ({
  id: l.id,
  token: l.token,
  settlement: { kind },
  startedAt: null,
})

const cancel: Racer = (db) => cancelMatching(db, {}, null, { limit: ROWS })
const heartbeat =
  (order: (l: Lease[]) => Lease[]): Racer =>
  (db, leases) =>
    extendLeases(db, WORKER, order(leases), 60)
const lastChecks: Racer = (db, leases) => startSends(db, lastFirst(leases))

/**
 * Rounds of two statements over the same `ROWS` claimed rows (`started`: the claim recorded their
 * sends as started, as an open gate's does), lined up so that their lock orders decide: a third
 * session holds the middle row; `first` (which locks in id order) takes the rows below it and waits,
 * then `second` starts, given its rows last first; then the middle row is let go. Locking in id
 * order, `second` waits behind `first` for the lowest row; locking in input order, it holds the rows
 * above the middle, and the two wait for each other. Returns who got a deadlock (40P01).
 */
async function deadlocksOfRaces(o: {
  started: boolean
  first: [string, Racer]
  second: [string, Racer]
}): Promise<string[]> {
  const name = new URL(t.url).pathname.slice(1)
  // A deadlock is found after deadlock_timeout (1 s by default): sooner, for sessions opened now.
  await t.pool.query(`alter database ${name} set deadlock_timeout = '20ms'`)
  // Plans follow the statistics, kept as they are here: never analyzed, the outbox looks empty, as
  // one whose rows in 'sending' are few among many does, and the probes of a statement's rows were
  // hashed and the input walked. An autovacuum's analyze would change that midway.
  await t.pool.query('alter table mailer.email_outbox set (autovacuum_enabled = off)')
  const h = openDb({ name: 'race', url: t.url, log: silentLogger, maxConnections: 4 })
  let holder: RowsHeld | null = null
  const deadlocks: string[] = []
  const counted = ([who, race]: [string, Racer], leases: Lease[]) =>
    race(h.db, leases).catch((e: unknown) => {
      if ((e as { code?: string }).code !== '40P01') throw e
      deadlocks.push(who)
    })
  try {
    for (let round = 0; round < ROUNDS; round++) {
      await t.pool.query('delete from mailer.email_attempts; delete from mailer.email_outbox')
      await t.pool.query(
        `insert into mailer.email_outbox (id, message) overriding system value
         select g, ${MESSAGE} from generate_series(1, ${ROWS}) g`,
      )
      const { leases } = await claimBatch(h.db, {
        limit: ROWS,
        workerId: 'w1',
        leaseSeconds: 60,
        defaultMaxAttempts: 3,
        markStarted: o.started,
      })
      expect(leases).toHaveLength(ROWS)
      holder = await holdRowLocked(t.pool, String(MIDDLE))
      const first = counted(o.first, leases)
      await untilLockWaits(t.pool)
      const second = counted(o.second, leases)
      // The last checks wait 50 ms at most (sql/0037), then skip the rows held: a poll on a loaded
      // machine can miss that wait, so the line-up is also complete once `second` has returned.
      let secondOver = false
      const over = () => {
        secondOver = true
      }
      second.then(over, over)
      await untilLockWaits(t.pool, { sessions: 2, over: () => secondOver })
      await holder.end('commit')
      await Promise.all([first, second])
    }
  } finally {
    await holder?.end('rollback')
    await h.close()
    await t.pool.query(`alter database ${name} reset all`)
    await t.pool.query('alter table mailer.email_outbox reset (autovacuum_enabled)')
  }
  return deadlocks
}

describe('statements locking the same claimed rows never deadlock', () => {
  test('a bulk cancel and a heartbeat of leases held last first', async () => {
    expect(
      await deadlocksOfRaces({
        started: false,
        first: ['cancel', cancel],
        second: ['heartbeat', heartbeat(lastFirst)],
      }),
    ).toEqual([])
  })

  test('a bulk cancel and the last checks of sends asked for last first', async () => {
    expect(
      await deadlocksOfRaces({
        started: false,
        first: ['cancel', cancel],
        second: ['start_sends', lastChecks],
      }),
    ).toEqual([])
  })

  test('a heartbeat and the last checks of sends asked for last first', async () => {
    expect(
      await deadlocksOfRaces({
        started: false,
        first: ['heartbeat', heartbeat((l) => l)],
        second: ['start_sends', lastChecks],
      }),
    ).toEqual([])
  })
})

test('a claim never waits for a row lock: it takes the rows nobody holds (SKIP LOCKED), so it cannot deadlock', async () => {
  await t.pool.query('delete from mailer.email_attempts; delete from mailer.email_outbox')
  await t.pool.query(
    `insert into mailer.email_outbox (id, message) overriding system value
     select g, ${MESSAGE} from generate_series(1, ${ROWS}) g`,
  )
  const holder = await holdRowLocked(t.pool, String(MIDDLE))
  try {
    // A bulk cancel holds the rows below the middle one and waits for it.
    const cancelling = cancelMatching(t.db, {}, null, { limit: ROWS })
    await untilLockWaits(t.pool)
    // Resolved while those rows are still held: a claim that waited would wait for the holder.
    const { leases } = await claimBatch(t.db, {
      limit: ROWS,
      workerId: 'w1',
      leaseSeconds: 60,
      defaultMaxAttempts: 3,
    })
    expect(leases.map((l) => Number(l.id))).toEqual(
      Array.from({ length: ROWS - MIDDLE }, (_, k) => MIDDLE + 1 + k),
    )
    await holder.end('commit')
    const { items } = await cancelling
    expect(items.filter((i) => i.outcome === 'cancelled')).toHaveLength(MIDDLE)
    expect(items.filter((i) => i.outcome === 'cancel_requested')).toHaveLength(ROWS - MIDDLE)
  } finally {
    await holder.end('rollback')
  }
})

test('a settlement does not wait out a row lock: it records the rows nobody holds and names the others busy (SKIP LOCKED), so it cannot deadlock', async () => {
  for (const kind of ['sent', 'released'] as const) {
    await t.pool.query('delete from mailer.email_attempts; delete from mailer.email_outbox')
    await t.pool.query(
      `insert into mailer.email_outbox (id, message) overriding system value
       select g, ${MESSAGE} from generate_series(1, ${ROWS}) g`,
    )
    const { leases } = await claimBatch(t.db, {
      limit: ROWS,
      workerId: 'w1',
      leaseSeconds: 60,
      defaultMaxAttempts: 3,
      markStarted: kind === 'sent',
    })
    const holder = await holdRowLocked(t.pool, String(MIDDLE))
    try {
      // A heartbeat that waits (as one for busy rows does) holds the rows below the middle one
      // and waits for it; the settlement, of the sends in the order they finished, does not wait
      // it out (markSent waits 50 ms in id order at most, as a lock of our own lasts, then skips).
      const beating = extendLeases(t.db, WORKER, leases, 60)
      await untilLockWaits(t.pool)
      const items = lastFirst(leases).map((l) => item(l, kind))
      const below = leases.filter((l) => Number(l.id) <= MIDDLE).map((l) => l.id)
      const above = leases.filter((l) => Number(l.id) > MIDDLE).map((l) => l.id)
      if (kind === 'sent') {
        const marked = await markSent(t.db, items, 'w1')
        expect([[...marked.sent].sort(), [...marked.busy].sort()]).toEqual([
          above.sort(),
          below.sort(),
        ])
      } else {
        const settled = await settleLeases(t.db, items, {
          workerId: 'w1',
          defaultMaxAttempts: 3,
          throttleDeadlineSeconds: 60,
        })
        const by = (outcome: string) =>
          settled.flatMap((r) => (r.outcome === outcome ? [r.id] : [])).sort()
        expect([by('released'), by(BUSY_OUTCOME)]).toEqual([above.sort(), below.sort()])
      }
      await holder.end('commit')
      expect((await beating).size).toBe(below.length)
    } finally {
      await holder.end('rollback')
    }
  }
})
