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
  queue.stopBegan()
  const lost = Array.from({ length: 30 }, (_, i) => `l${i}`)
  await Promise.all(lost.map((id) => queue.push(sentItem(id))))
  await queue.idle()
  // None is said recorded: what is not named is counted (the stop's own named first).
  expect(queue.unrecorded()).toEqual({ ids: [...lost, ...givenUp.slice(0, 70)], more: 80 })
})

test('a stop after 150 outcomes given up: the ones its own sends leave unrecorded (given up, found lost) are named first, those given up before it after them', async () => {
  let write: 'refused' | 'lost' = 'refused'
  const queue = createSettleQueue({
    // Refused: given up at once (giveUpAfterMs 0). Lost: the row's lease another's, none recorded.
    write: async () => {
      if (write === 'lost') return []
      throw new Error('refused')
    },
    clock: systemClock,
    log: silentLogger,
    giveUpAfterMs: 0,
  })
  const before = Array.from({ length: 150 }, (_, i) => `g${i}`)
  await Promise.all(before.map((id) => queue.push(sentItem(id))))
  queue.stopBegan()
  await Promise.all(['s0', 's1'].map((id) => queue.push(sentItem(id))))
  write = 'lost'
  await Promise.all(['l0', 'l1', 'l2'].map((id) => queue.push(sentItem(id))))
  await queue.idle()
  // Each given up before the stop was logged then, its lease long reclaimed; the stop's own are news.
  expect(queue.unrecorded()).toEqual({
    ids: ['s0', 's1', 'l0', 'l1', 'l2', ...before.slice(0, 95)],
    more: 55,
  })
})
