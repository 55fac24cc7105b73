// createSlots: the process-wide bound on sends in flight, handed out first come, first served; aborted waiters; tryAcquire.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createSlots } from '../../src/outbox/slots.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('slots: first come, first served; a release hands the slot to the next waiter', async () => {
  const slots = createSlots(1)
  const signal = new AbortController().signal
  expect(await slots.acquire(signal)).toBe(true)
  const order: number[] = []
  const a = slots.acquire(signal).then((ok) => order.push(ok ? 1 : -1))
  const b = slots.acquire(signal).then((ok) => order.push(ok ? 2 : -2))
  expect(slots.free()).toBe(0)
  slots.release()
  await a
  expect(order).toEqual([1])
  slots.release()
  await b
  expect(order).toEqual([1, 2])
  slots.release()
  expect(slots.free()).toBe(1)
})

test('slots: aborting a signal fails only the waiters that passed it', async () => {
  const slots = createSlots(1)
  const stopA = new AbortController()
  const stopB = new AbortController()
  expect(await slots.acquire(stopA.signal)).toBe(true)
  const waitingA = [slots.acquire(stopA.signal), slots.acquire(stopA.signal)]
  const waitingB = slots.acquire(stopB.signal)
  stopA.abort()
  expect(await Promise.all(waitingA)).toEqual([false, false])
  expect(await slots.acquire(stopA.signal)).toBe(false)
  slots.release()
  expect(await waitingB).toBe(true)
  expect(slots.free()).toBe(0)
})

test('slots: tryAcquire takes a free slot at once, but never one that a waiter is owed', async () => {
  const slots = createSlots(1)
  const signal = new AbortController().signal
  expect(slots.tryAcquire()).toBe(true)
  expect(slots.tryAcquire()).toBe(false)
  const waiting = slots.acquire(signal)
  // The release hands the slot to the waiter: nothing is free for a newcomer.
  slots.release()
  expect(slots.tryAcquire()).toBe(false)
  expect(await waiting).toBe(true)
  slots.release()
  expect(slots.tryAcquire()).toBe(true)
  expect(slots.free()).toBe(0)
})
