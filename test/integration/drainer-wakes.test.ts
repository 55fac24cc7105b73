// The drainer's wakes: one that comes while a claim runs is not lost, and news of two rows is not taken for news of the second alone.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { cancelOutboxRow } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

// No LISTEN (its sweep at connect would be a wake of its own) and a backstop poll ten minutes
// away, not the second a worker without LISTEN polls at: every claim here is one a wake asked for.
const quiet = { listenMode: 'poll' as const }
const unpolled = { pollIntervalMs: () => 600_000 }

test('a wake that arrives while a claim runs makes the next claim at once, not at the backstop poll', async () => {
  let id = ''
  let first = true
  const claim: typeof claimBatch = async (db, p) => {
    const r = await claimBatch(db, p)
    if (first) {
      first = false
      // A row committed and its notification heard while this (empty) claim was on its way back.
      id = await enqueue(t)
      e.drainer.wake()
    }
    return r
  }
  const e = createTestEngine(t, { config: quiet, deps: { ...unpolled, claim } })
  engine = e
  await e.start()
  await e.events.waitFor((x) => settledFor(id, 'sent')(x), 10_000)
  expect(e.sender.calls.map((m) => m.outboxId)).toEqual([id])
})

test('a second row’s news is other news: the claim looks for itself, so the first row is not left to the poll', async () => {
  const first = await enqueue(t)
  const second = await enqueue(t)
  // The second row is no longer pending (cancelled, or another worker took it).
  await cancelOutboxRow(t.db, second, null)
  const e = createTestEngine(t, { config: quiet, deps: unpolled })
  engine = e
  e.drainer.wake(first)
  e.drainer.wake(second)
  await e.start()
  await e.events.waitFor(settledFor(first, 'sent'), 10_000)
  expect(e.sender.calls.map((m) => m.outboxId)).toEqual([first])
})

test('with a backlog known, a row’s news does not narrow the next claim to that row', async () => {
  // Concurrency 1, an open gate: claims of 50. 51 rows: the first claim is full, a backlog.
  await t.pool.query(
    `insert into mailer.email_outbox (message)
     select jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi')
       from generate_series(1, 51)`,
  )
  let gone = ''
  const claim: typeof claimBatch = async (db, p) => {
    const r = await claimBatch(db, p)
    if (r.leases.length === 50) {
      // News of a row that another worker has taken by the time this worker claims again.
      gone = await enqueue(t)
      await cancelOutboxRow(t.db, gone, null)
      e.drainer.wake(gone)
    }
    return r
  }
  const e = createTestEngine(t, {
    config: { ...quiet, concurrency: 1 },
    deps: { ...unpolled, claim },
  })
  engine = e
  await e.start()
  await pollUntil(async () => (e.sender.calls.length === 51 ? true : undefined))
  expect(new Set(e.sender.calls.map((m) => m.outboxId)).size).toBe(51)
  expect(e.sender.calls.map((m) => m.outboxId)).not.toContain(gone)
})
