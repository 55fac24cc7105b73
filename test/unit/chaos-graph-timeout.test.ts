// The chaos soak's CHAOS_GRAPH_TIMEOUT_SECONDS: each release's worker configuration beside a longer Graph timeout loads.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { chaosLeases } from '../faults/chaos/settings.ts'
import { FAST } from '../faults/harness.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** A Graph worker's environment as the soak starts it (placeholders: loadConfig judges the rest). */
const graphWorker = {
  DATABASE_URL: `postgres://${['mailer', 'x'].join(':')}@db/app`,
  MAIL_TRANSPORT: 'graph',
  GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
  GRAPH_CLIENT_ID: '0c4b9f1e-6a2d-4e8b-b3a7-5d9c2e1f4a8b',
  GRAPH_CLIENT_SECRET: 's',
  MAIL_FROM: 'outbox@example.com',
  ...FAST,
}

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env)
    return []
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
}

test('unset, the leases are what they were: 5 s, the next release 8 s beating every 2 s, unstretched', () => {
  expect(chaosLeases(Number(FAST.GRAPH_REQUEST_TIMEOUT_SECONDS))).toEqual({
    current: 5,
    next: 8,
    nextHeartbeat: 2,
    scale: 1,
  })
})

test('each release loads beside every timeout the knob takes', () => {
  const refused: Record<number, string[]> = {}
  for (let t = 1; t <= 60; t++) {
    const l = chaosLeases(t)
    const timeout = { GRAPH_REQUEST_TIMEOUT_SECONDS: String(t) }
    const found = [
      ...problems({ ...graphWorker, ...timeout, LEASE_SECONDS: String(l.current) }),
      ...problems({
        ...graphWorker,
        ...timeout,
        LEASE_SECONDS: String(l.next),
        HEARTBEAT_SECONDS: String(l.nextHeartbeat),
      }),
    ]
    if (found.length > 0) refused[t] = found
    expect(l.next).toBeGreaterThan(l.current)
  }
  expect(refused).toEqual({})
})
