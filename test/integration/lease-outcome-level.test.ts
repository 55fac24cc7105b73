// The level of a settled row's one log line (lease-outcome.ts): a row given back for want of a token is the transport's news, at debug.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { recordOutcome } from '../../src/outbox/lease-outcome.ts'
import { useTestDb } from '../support/db.ts'
import { deliveryDeps } from '../support/delivery-deps.ts'
import { enqueue } from '../support/engine.ts'
import { createFakeSender } from '../support/fake-sender.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test('a row given back uncounted for want of a token is logged at debug, its certificate outside its dates too; a Graph throttle at info', async () => {
  const codes = [
    'AADSTS700027',
    'certificate_expired',
    'certificate_not_yet_valid',
    'ApplicationThrottled',
  ]
  for (const _ of codes) await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: codes.length,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  const lines: { level: string; code?: string; outcome?: string }[] = []
  const d = deliveryDeps(t.db, {
    sender: createFakeSender(),
    log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
  })
  for (const [i, lease] of leases.entries()) {
    const code = codes[i]!
    await recordOutcome(d, lease, {
      kind: 'retry',
      code,
      message: code,
      delayMs: 60_000,
      throttled: true,
      ambiguous: false,
    })
  }
  expect(
    lines.filter((l) => l.outcome === 'throttled').map((l) => ({ code: l.code, level: l.level })),
  ).toEqual([
    { code: 'AADSTS700027', level: 'debug' },
    { code: 'certificate_expired', level: 'debug' },
    { code: 'certificate_not_yet_valid', level: 'debug' },
    { code: 'ApplicationThrottled', level: 'info' },
  ])
})
