// A worker whose start replaces the pacing rate in force (a machine of an older release restarted after a deploy changed it) says so.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { PACING_RATE_KEY } from '../../src/outbox/pacing-rate.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

/** A worker's gate started at `rate` a minute; the warnings its start logged. */
async function started(holder: string, rate: number) {
  const lines: Record<string, unknown>[] = []
  const gate = createPgSendGate({
    db: t.db,
    clock: systemClock,
    log: createLogger('warn', (line) => lines.push(JSON.parse(line))),
    holder,
    maxConcurrency: 4,
    ratePerMinute: rate,
    slotTtlMs: 30_000,
  })
  await gate.start?.()
  await gate.close?.()
  return lines.map(({ ts: _ts, ...rest }) => rest)
}

test('a start that sets another rate than the one in force warns, naming both rates and the worker that noted the one it replaces', async () => {
  // The new release's machine starts at 20 a minute: nothing to replace.
  expect(await started('new-release:1', 20)).toEqual([])
  // A machine of the old release restarts (Fly restarts one not updated yet): its 30 holds now.
  expect(await started('old-release:2', 30)).toEqual([
    {
      level: 'warn',
      msg: "this worker's MAILBOX_RATE_PER_MINUTE replaces the rate every worker paced by: the newest worker's holds",
      ratePerMinute: 30,
      replacedRatePerMinute: 20,
      replacedNotedBy: 'new-release:1',
      replacedNotedAt: expect.any(String),
    },
  ])
  // Another start at the rate in force replaces nothing.
  expect(await started('old-release:3', 30)).toEqual([])
})

test('a rate an older binary noted (before 0069) is replaced with its noter unknown', async () => {
  expect(await started('new-release:1', 20)).toEqual([])
  // 0061's note, as an older binary makes it: next_at and turn_interval only.
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = now(), turn_interval = interval '6 seconds' where mailbox = $1`,
    [PACING_RATE_KEY],
  )
  expect(await started('new-release:2', 20)).toEqual([
    expect.objectContaining({ replacedRatePerMinute: 10, replacedNotedBy: null }),
  ])
})

test('a rate in force hand-set to -infinity (as clearing every pause at once might write) is replaced, said as -infinity: the start does not crash', async () => {
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, noted_by, noted_at)
     values ($1, '-infinity', interval '6 seconds', 'w2', '-infinity')`,
    [PACING_RATE_KEY],
  )
  expect(await started('new-release:1', 20)).toEqual([
    expect.objectContaining({
      replacedRatePerMinute: 10,
      replacedNotedBy: 'w2',
      replacedNotedAt: '-infinity',
    }),
  ])
})
