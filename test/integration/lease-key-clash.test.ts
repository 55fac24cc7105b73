// The lease key's edges: a lost registry entry whose key another worker drew meanwhile, and a beat that writes a key another transaction is writing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { extendReachableLeases } from '../../src/outbox/heartbeat.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const LONG_ID = 'e286de4f711986:12345:1a2b3c'
const OTHER = 'other:2:abcdef'
const worker = (id: string) => ({ id, host: 'h', pid: 1, version: 'v' })
const entries = async () =>
  (await t.pool.query('select id, lease_key from mailer.workers order by id')).rows as {
    id: string
    lease_key: string | null
  }[]

test("a heartbeat whose lost entry's key another transaction is writing at the same instant goes through: the entry comes back keyless, the other's key stands", async () => {
  const other = await t.pool.connect()
  try {
    await other.query('begin')
    await other.query(
      `insert into mailer.workers (id, host, pid, version, lease_key) values ($1, 'h', 2, 'v', 'k1x')`,
      [OTHER],
    )
    // The heartbeat of a worker whose entry is gone, holding k1x: it waits on the other's insert.
    const beat = extendReachableLeases(t.db, { ...worker(LONG_ID), leaseKey: 'k1x' }, [], 30).then(
      () => 'went through',
      (error: { code?: string; message?: string }) => `${error.code}: ${error.message}`,
    )
    await pollUntil(
      async () => {
        const { rows } = await t.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'`,
        )
        return rows[0]!.n > 0 ? true : undefined
      },
      20_000,
      10,
    )
    await other.query('commit')
    expect(await beat).toBe('went through')
    expect(await entries()).toEqual([
      { id: LONG_ID, lease_key: null },
      { id: OTHER, lease_key: 'k1x' },
    ])
  } finally {
    await other.query('rollback').catch(() => {})
    other.release()
  }
})
