// Held leases: when a drainer may claim again (its local queue at low water, its held leases under their bound), and whose release drops a row.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Lease } from '../../src/outbox/claim.ts'
import { createHeldLeases } from '../../src/outbox/held-leases.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const lease = (id: number, token = 't') => ({ id: String(id), token }) as Lease

test('an open gate claims again once its unsent leases are down to half a claim, not before', () => {
  const h = createHeldLeases({ gateOpen: true, concurrency: 1 })
  expect([h.batch, h.maxUnsent, h.maxHeld]).toEqual([50, 75, 150])
  for (let i = 0; i < 26; i++) {
    const l = lease(i)
    h.held.set(l.id, l)
    h.unsent.add(l)
  }
  expect(h.roomToClaim()).toBe(false)
  h.release(h.held.get('25')!)
  expect(h.roomToClaim()).toBe(true)
})

test('sent leases awaiting their settlement count against the held bound', () => {
  const h = createHeldLeases({ gateOpen: true, concurrency: 1 })
  for (let i = 0; i < h.maxHeld; i++) h.held.set(String(i), lease(i))
  // None unsent: the local queue is empty, yet the settlements lag a whole bound behind.
  expect(h.roomToClaim()).toBe(false)
  h.release(h.held.get('0')!)
  expect(h.roomToClaim()).toBe(true)
})

test('a stale lease’s release leaves the row’s live lease held', () => {
  const h = createHeldLeases({ gateOpen: false, concurrency: 2 })
  const stale = lease(7, 'old')
  const live = lease(7, 'new')
  h.held.set('7', live)
  expect(h.release(stale)).toBe(false)
  expect(h.held.get('7')).toBe(live)
  expect(h.settling(live)).toBe(true)
  expect(h.settling(stale)).toBe(false)
})
