// A worker's stop gives its unstarted rows back due at once: the other workers are woken to take them, not left to their backstop poll.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { createSlots } from '../../src/outbox/slots.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

const started: TestEngine[] = []
afterEach(async () => {
  for (const e of started.splice(0)) {
    e.sender.release()
    await e.stop(50)
  }
})

/** Each row's history (outcome), in id order. */
const histories = async () =>
  (
    await t.pool.query(
      `select o.status, array_agg(a.outcome order by a.id) as history
         from mailer.email_outbox o join mailer.email_attempts a on a.outbox_id = o.id
        group by o.id order by o.id`,
    )
  ).rows

test('the rows a stopping worker gives back unsent are sent by another listening worker at once, not at its backstop poll', async () => {
  // One send slot: its first row's send holds it (Graph slow to answer), the other two wait for it.
  const stopping = createTestEngine(t, {
    workerId: 'stopping-worker',
    deps: { slots: createSlots(1) },
  })
  started.push(stopping)
  stopping.sender.hold()
  await stopping.start()
  const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
  await pollUntil(async () =>
    stopping.drainer.status().inFlight === 3 && stopping.sender.inFlight() === 1 ? true : undefined,
  )
  // The other worker listens, its backstop poll ten minutes away (testWorkerConfig), and has made
  // its first claim (none due then): only a wake can bring it the rows.
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
  expect(other.sender.calls).toHaveLength(0)
  // The stop's grace outlasts the test: the held send stays in flight while the other two go back.
  const stopped = stopping.stop(30_000)
  const sentByOther = await pollUntil(
    async () => (other.sender.calls.length === 2 ? other.sender.calls : undefined),
    10_000,
  ).catch(() => other.sender.calls)
  const held = stopping.sender.calls[0]!.outboxId
  expect(sentByOther.map((m) => m.outboxId).sort()).toEqual(ids.filter((id) => id !== held).sort())
  // The held send ends; the stop records it sent.
  stopping.sender.release()
  await stopped
  expect(await histories()).toEqual(
    ids.map((id) => ({ status: 'sent', history: id === held ? ['sent'] : ['released', 'sent'] })),
  )
})
