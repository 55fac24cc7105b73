// The benchmark's pickups of the compiled binary (bench/systems/outbox-binary.ts): the same clock points as every other system's.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { pickupRecorder } from '../../bench/latency.ts'
import { outboxBinarySystem } from '../../bench/systems/outbox-binary.ts'
import { openProbe, type Probe } from '../../bench/systems/probe.ts'
import { createTestDb, type TestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
let probe: Probe

beforeAll(async () => {
  t = await createTestDb()
  probe = await openProbe(t.url)
})

afterAll(async () => {
  await probe.close()
  await t.drop()
})

test("the binary's pickup runs from the benchmark's commit to its recorded send start, the middle of that millisecond", async () => {
  // Never started: the send start is read from the attempt history the binary writes.
  const sys = outboxBinarySystem('bench', t.url, probe, '/no/binary', 'discard')
  const pickups = pickupRecorder()
  await sys.insertOne(7)
  const before = performance.now()
  pickups.committed(7)
  const after = performance.now()
  // The row's own created_at plays no part (it is the server's clock at the insert's start).
  await probe.query(`update mailer.email_outbox set created_at = created_at - interval '1 hour'`)
  // The worker records a send start as Date.now(): whole milliseconds. Two attempts: the first counts.
  const startMs = Math.floor(performance.timeOrigin + after) + 3
  await probe.query(
    `insert into mailer.email_attempts (outbox_id, attempt, started_at, outcome)
     select id, a, to_timestamp(($1::float8 + (a - 1) * 1000) / 1000), 'retry'
       from mailer.email_outbox, generate_series(1, 2) a`,
    [startMs],
  )
  const [ms, ...more] = await pickups.latencies(sys)
  expect(more).toEqual([])
  const startedAt = startMs + 0.5 - performance.timeOrigin
  expect(ms).toBeGreaterThanOrEqual(startedAt - after)
  expect(ms).toBeLessThanOrEqual(startedAt - before)
})
