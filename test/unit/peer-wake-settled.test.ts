// recordOutcome wakes the other workers for a row its settlement left due at once for them (a slow token request, a stop), once it has committed, and for no other.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { recordOutcome } from '../../src/outbox/lease-outcome.ts'
import type { SettledRow, Settlement } from '../../src/outbox/settle-item.ts'
import { claimedLease } from '../support/claimed-lease.ts'
import { deliveryDeps } from '../support/delivery-deps.ts'
import { createFakeSender } from '../support/fake-sender.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const TOKEN_SLOW: Settlement = {
  kind: 'retry',
  code: 'token_slow',
  message: 'no Graph token',
  delayMs: 0,
  throttled: true,
  ambiguous: false,
}

/** The wakes `met`, settled as `row` (null: the lease was lost), brought about; `stopping`: a stop had begun. */
async function wakesFor(met: Settlement, row: SettledRow | null, stopping = false) {
  let wakes = 0
  const stop = new AbortController()
  if (stopping) stop.abort()
  const d = deliveryDeps({} as Kysely<Database>, {
    sender: createFakeSender(),
    settle: { push: async () => row, idle: async () => {}, giveUpBy: () => {} },
    stopping: stop.signal,
    givenBackForOthers: () => {
      wakes++
    },
  })
  await recordOutcome(d, claimedLease(), met)
  return wakes
}

const pending = (outcome: string, code: string | null = null): SettledRow => ({
  id: '7',
  status: 'pending',
  outcome,
  code,
})

describe('a row given back due at once for another worker wakes the others', () => {
  test('a retry due now (token_slow), left pending', async () => {
    expect(await wakesFor(TOKEN_SLOW, pending('throttled', 'token_slow'))).toBe(1)
  })
  test('a row a stop gives back (released), left pending', async () => {
    expect(await wakesFor({ kind: 'released' }, pending('released'), true)).toBe(1)
    expect(await wakesFor({ kind: 'released', unconfirmed: true }, pending('released'), true)).toBe(
      1,
    )
  })
  test('only once its settlement has answered (committed): a wake before it finds nothing to claim', async () => {
    let wakes = 0
    let answer: (row: SettledRow) => void = () => {}
    const stop = new AbortController()
    stop.abort()
    const d = deliveryDeps({} as Kysely<Database>, {
      sender: createFakeSender(),
      settle: {
        push: () => new Promise<SettledRow>((r) => (answer = r)),
        idle: async () => {},
        giveUpBy: () => {},
      },
      stopping: stop.signal,
      givenBackForOthers: () => {
        wakes++
      },
    })
    const recorded = recordOutcome(d, claimedLease(), { kind: 'released' })
    await Bun.sleep(0)
    expect(wakes).toBe(0)
    answer(pending('released'))
    await recorded
    expect(wakes).toBe(1)
  })
})

describe('no wake for a row this worker takes again, one due later, or one its settlement ended', () => {
  test('released while the worker runs: its own loop claims it again', async () => {
    expect(await wakesFor({ kind: 'released' }, pending('released'))).toBe(0)
  })
  test('a retry due later (a backoff, a pacing turn)', async () => {
    expect(await wakesFor({ ...TOKEN_SLOW, delayMs: 5_000 }, pending('retry'))).toBe(0)
    // Due at its expiresAt to look its interrupted send up, before its delay is out.
    expect(await wakesFor(TOKEN_SLOW, { ...pending('retry'), dueMs: 1_200 })).toBe(0)
  })
  test('a settlement that ended the row (a cancel that won, throttled out) or found its lease lost', async () => {
    const ended = (status: string, outcome: string): SettledRow => ({
      id: '7',
      status,
      outcome,
      code: outcome,
    })
    expect(await wakesFor(TOKEN_SLOW, ended('cancelled', 'cancelled'))).toBe(0)
    expect(await wakesFor(TOKEN_SLOW, ended('failed', 'throttled'))).toBe(0)
    expect(await wakesFor({ kind: 'released' }, ended('cancelled', 'cancelled'), true)).toBe(0)
    expect(await wakesFor(TOKEN_SLOW, null)).toBe(0)
    expect(await wakesFor({ kind: 'released' }, null, true)).toBe(0)
  })
  test('a sent row: a healthy send’s settlement wakes no one', async () => {
    expect(
      await wakesFor({ kind: 'sent' }, { id: '7', status: 'sent', outcome: 'sent', code: null }),
    ).toBe(0)
  })
})
