// The settle queue's unrecorded outcomes over a process's life: at most UNRECORDED_NAMED named (the stop's own first), every one counted, none ever dropped.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createSettleQueue } from '../../src/outbox/settle-queue.ts'
import { sentItem } from '../support/sent-settle-item.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/**
 * A queue whose writes are refused for a reason of their own (not an outage: given up at once,
 * giveUpAfterMs 0) until `lose()`; from then on every row's lease is another's: none is recorded.
 */
function refusingQueue() {
  let lost = false
  const queue = createSettleQueue({
    write: async () => {
      if (lost) return []
      throw new Error('refused')
    },
    clock: systemClock,
    log: silentLogger,
    giveUpAfterMs: 0,
  })
  const pushAll = (ids: string[]) => Promise.all(ids.map((id) => queue.push(sentItem(id))))
  return {
    queue,
    pushAll,
    lose: () => {
      lost = true
    },
  }
}

test('outcomes given up and found lost, a process’s life long: the first 100 named, the rest counted', async () => {
  const { queue, pushAll, lose } = refusingQueue()
  const givenUp = Array.from({ length: 150 }, (_, i) => `g${i}`)
  await pushAll(givenUp)
  lose()
  queue.stopBegan()
  const lost = Array.from({ length: 30 }, (_, i) => `l${i}`)
  await pushAll(lost)
  await queue.idle()
  // None is said recorded: what is not named is counted (the stop's own named first).
  expect(queue.unrecorded()).toEqual({ ids: [...lost, ...givenUp.slice(0, 70)], more: 80 })
})

test('a stop after 150 outcomes given up: the ones its own sends leave unrecorded (given up, found lost) are named first, those given up before it after them', async () => {
  const { queue, pushAll, lose } = refusingQueue()
  const before = Array.from({ length: 150 }, (_, i) => `g${i}`)
  await pushAll(before)
  queue.stopBegan()
  await pushAll(['s0', 's1'])
  lose()
  await pushAll(['l0', 'l1', 'l2'])
  await queue.idle()
  // Each given up before the stop was logged then, its lease long reclaimed; the stop's own are news.
  expect(queue.unrecorded()).toEqual({
    ids: ['s0', 's1', 'l0', 'l1', 'l2', ...before.slice(0, 95)],
    more: 55,
  })
})
