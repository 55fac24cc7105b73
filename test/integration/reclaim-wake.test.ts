// Rows a reclaim puts back due at once are taken by another worker when the reclaiming one cannot claim them (its token request slow): not left to the other's backstop poll.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

const started: TestEngine[] = []
afterEach(async () => {
  for (const e of started.splice(0)) await e.stop(50)
})

test('a row whose worker died, reclaimed by a worker whose token request is slow, is sent by another listening worker at once', async () => {
  // The other worker listens, its backstop poll ten minutes away (testWorkerConfig), and has made
  // its first claim (none due then): only a wake can bring it the row.
  let claims = 0
  const claim: typeof claimBatch = async (db, p) => {
    const r = await claimBatch(db, p)
    claims++
    return r
  }
  const other = createTestEngine(t, { workerId: 'other-worker', deps: { claim } })
  started.push(other)
  await other.start()
  await pollUntil(async () => (claims >= 1 ? true : undefined))
  // A worker died holding the row, its send not started: its lease has ended. Enqueued an hour
  // ahead, so the enqueue's own notification brings the other worker nothing to claim: only the
  // reclaim's wake can.
  const id = await enqueue(t, undefined, { sendAt: new Date(Date.now() + 3_600_000).toISOString() })
  await t.pool.query(
    `update mailer.email_outbox
        set status = 'sending', attempts = 1, lease_owner = 'gone', lease_token = gen_random_uuid(),
            lease_expires_at = now() - interval '1 second', send_at = now() - interval '1 second'
      where id = $1`,
    [id],
  )
  // The reclaiming worker's token request is slow (held for it: it claims nothing until it ends).
  const slowToken = createTestEngine(t, {
    workerId: 'slow-token-worker',
    deps: { heldForToken: () => new Promise<void>(() => {}) },
  })
  started.push(slowToken)
  await slowToken.start()
  await slowToken.events.waitFor((e) => e.type === 'reclaimed')
  const sent = await pollUntil(
    async () => (other.sender.calls.length === 1 ? other.sender.calls : undefined),
    10_000,
  ).catch(() => other.sender.calls)
  expect(sent.map((m) => m.outboxId)).toEqual([id])
  expect(slowToken.sender.calls).toHaveLength(0)
})
