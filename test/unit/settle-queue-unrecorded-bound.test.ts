// The settle queue's unrecorded outcomes over a process's life: at most UNRECORDED_NAMED named, every one counted, none ever dropped.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createSettleQueue } from '../../src/outbox/settle-queue.ts'
import { sentItem } from '../support/sent-settle-item.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('outcomes given up and found lost, a process’s life long: the first 100 named, the rest counted', async () => {
  let lostNow = false
  const queue = createSettleQueue({
    // Refused for a reason of its own (not an outage): given up at once (giveUpAfterMs 0). Later,
    // during the stop, every row's lease is another's: the statement records none.
    write: async () => {
      if (lostNow) return []
      throw new Error('refused')
    },
    clock: systemClock,
    log: silentLogger,
    giveUpAfterMs: 0,
  })
  const givenUp = Array.from({ length: 150 }, (_, i) => `g${i}`)
  await Promise.all(givenUp.map((id) => queue.push(sentItem(id))))
  lostNow = true
  queue.countLostFromNow()
  const lost = Array.from({ length: 30 }, (_, i) => `l${i}`)
  await Promise.all(lost.map((id) => queue.push(sentItem(id))))
  await queue.idle()
  // None is said recorded: what is not named is counted.
  expect(queue.unrecorded()).toEqual({ ids: givenUp.slice(0, 100), more: 80 })
})
