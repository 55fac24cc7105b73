// Fault 12's watch of a stopping worker's liveness lock: a loss counts only if read while a send was unanswered.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { lockLostWhileUnanswered } from '../faults/lock-kept.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/**
 * A stopping worker, counted in reads of its lock: Graph answers its two sends while the reads
 * `answerAt` lists wait their turn, and it lets its lock go before the read `releaseAt` runs.
 */
function worker(answerAt: readonly [number, number], releaseAt: number) {
  let answered = 0
  let reads = 0
  return {
    answered: () => answered,
    held: async () => {
      reads++
      answered += answerAt.filter((r) => r === reads).length
      return reads < releaseAt
    },
    sends: 2,
  }
}

test('a read sent before the last answer, run once the worker let its lock go with its sends over, is no loss', async () => {
  // Fault 12 on a loaded machine (round 54): Graph answered the second send at 08:44:08.008, the
  // worker settled both at .009, ended its LISTEN session and stopped at .015; the read sent
  // before .008 found the lock gone.
  expect(await lockLostWhileUnanswered(worker([2, 3], 3))).toBe(false)
})

test('a lock gone before Graph answered: a loss, at the signal or between the answers', async () => {
  // serve-stop.ts's listeners stopped beside the drainers (614d768a): gone at the signal.
  expect(await lockLostWhileUnanswered(worker([50, 51], 2))).toBe(true)
  expect(await lockLostWhileUnanswered(worker([3, 9], 5))).toBe(true)
})

test('a lock held until both answers: no loss, and the watch ends with the last answer', async () => {
  const w = worker([4, 7], 8)
  expect(await lockLostWhileUnanswered(w)).toBe(false)
  expect(w.answered()).toBe(2)
})
