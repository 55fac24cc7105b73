// madeOnce: one try shared by its callers, a success kept, a failure tried again when next asked.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { madeOnce } from '../support/made-once.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('callers share one try and its success; nothing is made again', async () => {
  let makes = 0
  const get = madeOnce(async () => ++makes)
  expect(await Promise.all([get(), get()])).toEqual([1, 1])
  expect(await get()).toBe(1)
  expect(makes).toBe(1)
})

test('a failed try fails its callers, and the next call tries again (a killed build failed every later binary test)', async () => {
  let makes = 0
  const get = madeOnce(async () => {
    makes++
    if (makes === 1) throw new Error('bun build failed: killed')
    return 'bin'
  })
  const first = await Promise.allSettled([get(), get()])
  expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected'])
  expect(makes).toBe(1)
  expect(await get()).toBe('bin')
  expect(await get()).toBe('bin')
  expect(makes).toBe(2)
})
