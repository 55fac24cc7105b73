// A row released while the worker runs is counted for its stop (own-releases.ts) until a claim begun after it took every row due: none other is.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { recordOutcome } from '../../src/outbox/lease-outcome.ts'
import { createOwnReleases } from '../../src/outbox/own-releases.ts'
import type { SettledRow, Settlement } from '../../src/outbox/settle-item.ts'
import { claimedLease } from '../support/claimed-lease.ts'
import { deliveryDeps } from '../support/delivery-deps.ts'
import { createFakeSender } from '../support/fake-sender.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** How often recordOutcome counted `met`, settled as `row` (null: the lease was lost), as released for the worker's own loop. */
async function countedFor(met: Settlement, row: SettledRow | null, stopping = false) {
  let counted = 0
  const stop = new AbortController()
  if (stopping) stop.abort()
  const d = deliveryDeps({} as Kysely<Database>, {
    sender: createFakeSender(),
    settle: { push: async () => row, idle: async () => {}, giveUpBy: () => {} },
    stopping: stop.signal,
    releasedForSelf: () => {
      counted++
    },
  })
  await recordOutcome(d, claimedLease(), met)
  return counted
}

const settled = (status: string, outcome: string): SettledRow => ({
  id: '7',
  status,
  outcome,
  code: null,
})

describe('recordOutcome counts a row released for the worker’s own loop', () => {
  test('released while it runs, left pending: counted', async () => {
    expect(await countedFor({ kind: 'released' }, settled('pending', 'released'))).toBe(1)
  })
  test('released by a stop (it wakes the others itself), a cancel that won, a lease lost, a healthy send: not', async () => {
    expect(await countedFor({ kind: 'released' }, settled('pending', 'released'), true)).toBe(0)
    expect(await countedFor({ kind: 'released' }, settled('cancelled', 'cancelled'))).toBe(0)
    expect(await countedFor({ kind: 'released' }, null)).toBe(0)
    expect(await countedFor({ kind: 'sent' }, settled('sent', 'sent'))).toBe(0)
  })
})

describe('a release stays owed until a claim begun after it takes every row due', () => {
  test('none released: nothing owed', () => {
    expect(createOwnReleases().owed()).toBe(false)
  })
  test('a claim begun before the release does not take it; one begun after does', () => {
    const own = createOwnReleases()
    const before = own.claimBegins()
    own.released()
    own.claimedAll(before)
    expect(own.owed()).toBe(true)
    const after = own.claimBegins()
    own.claimedAll(after)
    expect(own.owed()).toBe(false)
  })
  test('a release while a claim runs stays owed after it; an older claim answering late undoes nothing', () => {
    const own = createOwnReleases()
    own.released()
    const first = own.claimBegins()
    own.released()
    const second = own.claimBegins()
    own.claimedAll(second)
    own.claimedAll(first)
    expect(own.owed()).toBe(false)
    const third = own.claimBegins()
    own.released()
    own.claimedAll(third)
    expect(own.owed()).toBe(true)
  })
})
