// The settle queue's unrecorded outcomes and a lease found lost: counted once a stop began (stopBegan), not before.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createSettleQueue } from '../../src/outbox/settle-queue.ts'
import { sentItem } from '../support/sent-settle-item.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('an outcome whose write finds the lease lost is unrecorded when found since the stop began, not before', async () => {
  // Every row's lease is another's by the time its outcome is written: the statement records none.
  const queue = createSettleQueue({
    write: async () => [],
    clock: systemClock,
    log: silentLogger,
    giveUpAfterMs: 30_000,
  })
  expect(await queue.push(sentItem('1'))).toBeNull()
  // Logged and counted as lease_lost when found; its row its new holder's since.
  expect(queue.unrecorded()).toEqual({ ids: [], more: 0 })
  queue.stopBegan()
  expect(await queue.push(sentItem('2'))).toBeNull()
  await queue.idle()
  // Taken by another worker during the stop, the send may go again: the stop says so (exit 1).
  expect(queue.unrecorded()).toEqual({ ids: ['2'], more: 0 })
})
