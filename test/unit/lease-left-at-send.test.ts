// The lease a Graph send starts with, under every lease, heartbeat and request timeout the configuration accepts.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { loadConfig } from '../../src/config.ts'
import type { Lease } from '../../src/outbox/claim.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const graph = {
  DATABASE_URL: 'postgres://u:p@db/app',
  MAIL_TRANSPORT: 'graph',
  GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
  GRAPH_CLIENT_ID: '0c4b9f1e-6a2d-4e8b-b3a7-5d9c2e1f4a8b',
  GRAPH_CLIENT_SECRET: 's',
  MAIL_FROM: 'outbox@example.com',
}

const lease = { id: '1', token: 't' } as Lease

/** The configuration for these values, or null when loadConfig refuses it. */
function accepted(env: Record<string, string | undefined>) {
  try {
    return loadConfig({ ...graph, ...env })
  } catch {
    return null
  }
}

/** Whether a send may start `ms` after the statement that last confirmed its lease was sent. */
function startsAt(c: NonNullable<ReturnType<typeof accepted>>, ms: number): boolean {
  const clock: Clock = { now: () => ms, sleep: async () => {} }
  // As the drainer builds them (drainer-lease-keeping.ts) from what serve passes it (database-engines.ts).
  const d = createLeaseDeadlines(clock, c.worker.leaseSeconds * 1000, {
    sendTimeoutMs: c.graph?.requestTimeoutMs ?? 0,
    heartbeatMs: c.worker.heartbeatSeconds * 1000,
  })
  d.confirm([lease], 0)
  return d.holds(lease)
}

test('every lease, heartbeat and request timeout the configuration accepts: a send starts only with its timeout and 1 s more of lease left, and heartbeats that work never hold one back', () => {
  const short: string[] = []
  const heldBack: string[] = []
  for (const l of [5, 6, 7, 8, 10, 12, 20, 30, 45, 60, 61, 90, 120]) {
    for (const h of [undefined, ...Array.from({ length: Math.floor(l / 2) }, (_, i) => i + 1)]) {
      for (const t of [undefined, ...Array.from({ length: Math.floor(l / 2) }, (_, i) => i + 1)]) {
        const c = accepted({
          LEASE_SECONDS: String(l),
          HEARTBEAT_SECONDS: h === undefined ? undefined : String(h),
          GRAPH_REQUEST_TIMEOUT_SECONDS: t === undefined ? undefined : String(t),
        })
        if (!c) continue
        const leaseMs = c.worker.leaseSeconds * 1000
        const timeoutMs = c.graph?.requestTimeoutMs ?? 0
        const beatMs = c.worker.heartbeatSeconds * 1000
        const named = `LEASE_SECONDS=${l} HEARTBEAT_SECONDS=${h ?? '-'} GRAPH_REQUEST_TIMEOUT_SECONDS=${t ?? '-'}`
        // 1 ms less lease left than the timeout and a second: no send starts.
        if (startsAt(c, leaseMs - timeoutMs - 1_000 + 1)) short.push(named)
        // The next heartbeat's statement answers within a second of its tick: sends still start.
        if (!startsAt(c, beatMs + 999)) heldBack.push(named)
      }
    }
  }
  // The smallest leases refused first, and the default lease's.
  const shown = [...short.slice(0, 3), ...short.filter((s) => s.startsWith('LEASE_SECONDS=60 '))]
  expect({ short: shown, count: short.length, heldBack }).toEqual({
    short: [],
    count: 0,
    heldBack: [],
  })
})
