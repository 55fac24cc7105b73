// A vacuum after a small drain into a large outbox cleans the claim index (0008_outbox_vacuum), so claims stay short.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { markSent } from '../../src/outbox/mark-sent.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const KEPT = 400_000
// Under 2 % of the heap's pages: the share below which Postgres skips index cleanup by default.
const DRAINED = 5_000
const MESSAGE = `'{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb`

const t = useTestDb()
beforeAll(async () => {
  await t.pool.query(
    `insert into mailer.email_outbox (message, status, sent_at, attempts)
     select ${MESSAGE}, 'sent', now(), 1 from generate_series(1, ${KEPT})`,
  )
  await t.pool.query('vacuum (freeze, analyze) mailer.email_outbox')
})

/** Enqueues `n` rows and takes them through the engine's claim and settlement, 500 at a time. */
async function drain(n: number) {
  await t.pool.query(
    `insert into mailer.email_outbox (message) select ${MESSAGE} from generate_series(1, $1::int)`,
    [n],
  )
  for (let left = n; left > 0; left -= 500) {
    const { leases } = await claimBatch(t.db, {
      limit: 500,
      workerId: 'w',
      leaseSeconds: 60,
      defaultMaxAttempts: 8,
      markStarted: true,
    })
    const startedAt = new Date()
    const sent = await markSent(
      t.db,
      leases.map((l) => ({
        id: l.id,
        token: l.token,
        settlement: { kind: 'sent' },
        startedAt,
        httpStatus: 202,
      })),
      'w',
    )
    expect(sent.sent.size).toBe(leases.length)
  }
}

/**
 * Buffers an empty claim reads: its probes walk the claim index's entries, dead ones included. On
 * one connection, measured on the second call, so that planning (catalog reads) is not counted.
 */
async function emptyClaimBuffers(): Promise<number> {
  const client = await t.pool.connect()
  try {
    let blocks = 0
    for (let i = 0; i < 2; i++) {
      const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: Record<string, number> }] }>(
        `explain (analyze, buffers, format json) select mailer.claim_batch(10, 'w', gen_random_uuid(), 60, true, 8)`,
      )
      const plan = rows[0]!['QUERY PLAN'][0].Plan
      blocks = plan['Shared Hit Blocks']! + plan['Shared Read Blocks']!
    }
    return blocks
  } finally {
    client.release()
  }
}

/**
 * Returns once no other session of this database holds a snapshot. The drain makes an autoanalyze
 * of the outbox due (15,000 rows changed, over its 2 % of 405,000): one that began during the drain
 * holds a snapshot from before its last commits, and a vacuum keeps every version that snapshot
 * could still see. A snapshot taken after this returns sees the drain whole.
 */
async function noOlderSnapshot() {
  await pollUntil(async () => {
    const { rows } = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and backend_xmin is not null`,
    )
    return rows[0]!.n === 0 ? true : undefined
  }, 20_000)
}

describe('vacuuming the outbox (0008_outbox_vacuum)', () => {
  test('autovacuum comes by a fixed count of dead versions, and every vacuum cleans the indexes', async () => {
    const { rows } = await t.pool.query<{ reloptions: string[] }>(
      `select reloptions from pg_class where oid = 'mailer.email_outbox'::regclass`,
    )
    expect(rows[0]!.reloptions).toEqual(
      expect.arrayContaining([
        'vacuum_index_cleanup=on',
        'autovacuum_vacuum_scale_factor=0',
        'autovacuum_vacuum_threshold=10000',
      ]),
    )
  })

  test('a vacuum after a small drain into a large table leaves no dead claim-index entries', async () => {
    await drain(DRAINED)
    const before = await emptyClaimBuffers()
    await noOlderSnapshot()
    await t.pool.query('vacuum mailer.email_outbox')
    const after = await emptyClaimBuffers()
    expect(before).toBeGreaterThan(10)
    expect(after).toBeLessThanOrEqual(4)
  })

  // The setup above must be one where Postgres's default skips index cleanup, or the test proves nothing.
  test('with index cleanup left to Postgres, the same vacuum leaves them', async () => {
    await t.pool.query('alter table mailer.email_outbox set (vacuum_index_cleanup = auto)')
    try {
      await drain(DRAINED)
      await t.pool.query('vacuum mailer.email_outbox')
      expect(await emptyClaimBuffers()).toBeGreaterThan(10)
    } finally {
      await t.pool.query('alter table mailer.email_outbox set (vacuum_index_cleanup = on)')
    }
  })
})
