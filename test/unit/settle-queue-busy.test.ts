// The settle queue's rows another transaction holds: parked and asked again, waited for by idle(), given up at a stop's deadline.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { silentLogger } from '../../src/log.ts'
import { BUSY_OUTCOME, type SettledRow, type SettleItem } from '../../src/outbox/settle-item.ts'
import { createSettleQueue } from '../../src/outbox/settle-queue.ts'
import { sleepSteppedClock } from '../support/sleep-stepped-clock.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const item: SettleItem = { id: '1', token: 't', settlement: { kind: 'sent' }, startedAt: null }
const recorded: SettledRow = { id: '1', status: 'sent', outcome: 'sent', code: null }
const busy: SettledRow = { id: '1', status: 'sending', outcome: BUSY_OUTCOME, code: null }

test('idle() waits for a row parked while another transaction held it, until it is recorded', async () => {
  const { clock } = sleepSteppedClock()
  let writes = 0
  const queue = createSettleQueue({
    clock,
    log: silentLogger,
    giveUpAfterMs: 15_000,
    write: async () => (writes++ < 2 ? [busy] : [recorded]),
  })
  let answer: SettledRow | null | undefined
  void queue.push(item).then((r) => {
    answer = r
  })
  // A stop waits on idle() before it deregisters and ends the pool: nothing may be left parked.
  await queue.idle()
  expect(writes).toBe(3)
  expect(answer).toEqual(recorded)
})

test('a parked row is given up (null: its lease expires and is reclaimed) once a stop’s deadline has passed, not asked again', async () => {
  const { c, clock } = sleepSteppedClock()
  let writes = 0
  const queue = createSettleQueue({
    clock,
    log: silentLogger,
    giveUpAfterMs: 15_000,
    write: async () => (writes++ < 5 ? [busy] : [recorded]),
  })
  queue.giveUpBy(c.mono)
  expect(await queue.push(item)).toBeNull()
  expect(writes).toBe(1)
})
