// Sends whose effect is unknown: a transport that throws leaves its send ambiguous, a resend by policy stays unverified, and a grace the database cannot tell sends nothing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Kysely } from 'kysely'
import { systemClock } from '../../src/clock.ts'
import type { Database } from '../../src/db/schema.ts'
import { silentLogger } from '../../src/log.ts'
import type { Lease } from '../../src/outbox/claim.ts'
import type { DeliveryDeps } from '../../src/outbox/deliver.ts'
import { resolveAmbiguity } from '../../src/outbox/interrupted-send.ts'
import type { MailboxLookup } from '../../src/outbox/mailbox-lookup.ts'
import type { Finish, Ready } from '../../src/outbox/send-attempt.ts'
import { openGate } from '../../src/outbox/send-gate.ts'
import { sendOne } from '../../src/outbox/send-verdict.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import { databaseAway } from '../support/database-away.ts'
import { createFakeSender } from '../support/fake-sender.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const lease = { id: '7', token: crypto.randomUUID(), attempt: 2, ambiguous: true } as Lease
const ready = (): Ready => ({
  lease,
  mail: {
    outboxId: '7',
    from: { address: 'sender@example.com' },
    to: [{ address: 'rcpt@example.com' }],
    subject: 's',
    text: 't',
  } as unknown as Ready['mail'],
})

function deps(o: {
  db?: Kysely<Database>
  lookup: MailboxLookup | null
  /** A stop has begun (its grace running, no hard abort yet). */
  stopping?: true
}): {
  d: DeliveryDeps
  settled: Settlement[]
  finish: Finish
} {
  const settled: Settlement[] = []
  const finish: Finish = async (_l, s) => {
    settled.push(s)
  }
  const d = {
    dbName: 'test',
    db: o.db,
    gate: openGate,
    log: silentLogger,
    backoff: { baseMs: 1_000, maxMs: 10_000 },
    lookup: o.lookup,
    ambiguousPolicy: 'resend',
    abort: new AbortController().signal,
    stopping: o.stopping ? AbortSignal.abort() : new AbortController().signal,
  } as unknown as DeliveryDeps
  return { d, settled, finish }
}

test('resent by policy with no lookup, the send is marked unverified: its failure leaves the question open', async () => {
  const { d, settled, finish } = deps({ lookup: null })
  const r = ready()
  expect(await resolveAmbiguity(d, r, finish)).toBe(true)
  expect(r.unverified).toBe(true)
  expect(settled).toEqual([])
  // The resend meets a definite failure (a 500 says nothing of the interrupted send): still ambiguous.
  const sender = createFakeSender()
  sender.script.set('7', [
    { kind: 'retry', code: 'server_error', message: 'HTTP 500', ambiguous: false },
  ])
  const { settlement } = await sendOne({ ...d, sender, clock: systemClock }, r, null)
  expect(settlement).toMatchObject({ kind: 'retry', code: 'server_error', ambiguous: true })
})

test('resent by policy with no lookup, a send refused for good fails the row with the question left open: its mark is kept for a retry to look it up', async () => {
  const { d, finish } = deps({ lookup: null })
  const r = ready()
  expect(await resolveAmbiguity(d, r, finish)).toBe(true)
  // The resend is refused (a 4xx): it delivered nothing, but the interrupted send may have.
  const sender = createFakeSender()
  sender.script.set('7', [
    { kind: 'reject', code: 'ErrorSendAsDenied', message: 'HTTP 403', httpStatus: 403 },
  ])
  const { settlement } = await sendOne({ ...d, sender, clock: systemClock }, r, null)
  expect(settlement).toEqual({
    kind: 'failed',
    code: 'ErrorSendAsDenied',
    message: 'HTTP 403',
    ambiguous: true,
    resentUnverified: true,
  })
})

test('"not found" while the database cannot say how long ago the send was interrupted: asked again, not sent', async () => {
  // The grace's read fails.
  const db = await databaseAway()
  try {
    const { d, settled, finish } = deps({ db, lookup: async () => 'not_found' })
    expect(await resolveAmbiguity(d, ready(), finish)).toBe(false)
    expect(settled).toMatchObject([
      { kind: 'retry', code: 'lookup_failed', throttled: true, ambiguous: true },
    ])
  } finally {
    await db.destroy()
  }
})

test('once a stop has begun, a lookup that failed is a failed lookup (its backoff); only one the stop cut off is released', async () => {
  const failed = deps({ lookup: async () => 'error', stopping: true })
  expect(await resolveAmbiguity(failed.d, ready(), failed.finish)).toBe(false)
  expect(failed.settled).toMatchObject([
    { kind: 'retry', code: 'lookup_failed', throttled: true, ambiguous: true, lookupWait: true },
  ])
  expect((failed.settled[0] as { delayMs: number }).delayMs).toBeGreaterThan(0)
  const cut = deps({ lookup: async () => 'stopped', stopping: true })
  expect(await resolveAmbiguity(cut.d, ready(), cut.finish)).toBe(false)
  expect(cut.settled).toEqual([{ kind: 'released' }])
})

test('a transport that throws leaves its send ambiguous: the provider may have the message', async () => {
  const { d } = deps({ lookup: null })
  const sender = {
    name: 'throwing',
    send: async () => {
      throw new Error('socket hang up')
    },
  }
  const r = { ...ready(), lease: { ...lease, ambiguous: false } }
  const { settlement } = await sendOne({ ...d, sender, clock: systemClock }, r, null)
  expect(settlement).toMatchObject({ kind: 'retry', code: 'network', ambiguous: true })
})

test('a transport’s own word on whether the provider may have the message outranks the code', async () => {
  const { d } = deps({ lookup: null })
  const sender = createFakeSender()
  sender.script.set('7', [
    // A 504 from Graph's gateway: the request reached it (ambiguous), whatever its code.
    { kind: 'retry', code: 'gateway_timeout', message: 'HTTP 504', ambiguous: true },
    // A connection refused before any request: nothing reached the provider.
    { kind: 'retry', code: 'network', message: 'ECONNREFUSED', ambiguous: false },
  ])
  const r = { ...ready(), lease: { ...lease, ambiguous: false } }
  const ctx = { ...d, sender, clock: systemClock }
  expect((await sendOne(ctx, r, null)).settlement).toMatchObject({ ambiguous: true })
  expect((await sendOne(ctx, r, null)).settlement).toMatchObject({ ambiguous: false })
})

test('a send aborted mid-request (a stop past its grace) is an ambiguous retry; only one aborted before any request is a release', async () => {
  const { d } = deps({ lookup: null })
  const sender = createFakeSender()
  sender.script.set('7', [
    { kind: 'retry', code: 'aborted', message: 'aborted' },
    {
      kind: 'retry',
      code: 'aborted',
      message: 'aborted while waiting for a token',
      ambiguous: false,
    },
  ])
  const r = { ...ready(), lease: { ...lease, ambiguous: false } }
  const ctx = { ...d, sender, clock: systemClock }
  expect((await sendOne(ctx, r, null)).settlement).toMatchObject({
    kind: 'retry',
    code: 'aborted',
    ambiguous: true,
  })
  expect((await sendOne(ctx, r, null)).settlement).toEqual({ kind: 'released' })
})
