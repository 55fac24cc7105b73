// Liveness and readiness ages (a silent worker loop, failing claims) timed on the monotonic clock, whatever the wall clock does meanwhile.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, monotonicNow, systemClock } from '../../src/clock.ts'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

/** A clock moved only by the test: the wall reading stepped at will, the monotonic one advanced. */
function handClock() {
  const c = { wall: 1_750_000_000_000, mono: 1_000 }
  const clock: Clock = { now: () => c.wall, monotonic: () => c.mono, sleep: systemClock.sleep }
  return { c, clock }
}

test('a wall clock stepped forward an hour does not make a running worker loop look wedged', async () => {
  const { c, clock } = handClock()
  // No LISTEN and no backstop poll within the test: the loop turns at its start alone.
  const engine = createTestEngine(t, {
    deps: { clock, pollIntervalMs: () => 600_000 },
    config: { listenMode: 'poll' },
  })
  const health = createHealthMonitor({
    databases: [{ name: 'shop', statements: t.pool, drainer: engine.drainer, listener: null }],
    wedgedAfterMs: 120_000,
    // As serve wires them: the monitor and the loop read one system clock.
    monotonicNow: () => monotonicNow(clock),
  })
  engine.drainer.start()
  try {
    await pollUntil(async () => engine.drainer.status().lastLoopAt ?? undefined)
    const shown = engine.drainer.status().lastLoopAt
    // NTP (or an operator) steps the wall clock an hour ahead; one second passes.
    c.wall += 3_600_000
    c.mono += 1_000
    expect(health.liveness()).toEqual({ ok: true, problems: [] })
    // The loop's last turn is still shown as the wall time it was read at.
    expect(engine.drainer.status().lastLoopAt).toBe(shown)
    // Silent past the bound on the monotonic clock: wedged, whatever the wall clock says.
    c.wall -= 7_200_000
    c.mono += 120_000
    expect(health.liveness()).toEqual({
      ok: false,
      problems: ['shop: worker loop silent for 121s'],
    })
  } finally {
    await engine.stop(0)
  }
})

test('claims failing make the worker unready after 30 s on the monotonic clock, not after a wall clock stepped forward', async () => {
  const { c, clock } = handClock()
  // The worker's own connections open read-only, as on a standby; the probe runs on the test's
  // read-write pool (a cause a probe cannot see), so only the claims' record can say it.
  const url = new URL(t.url)
  url.searchParams.set('options', '-c default_transaction_read_only=on')
  const readOnly = openDb({ name: 'ro', url: url.toString(), log: silentLogger })
  const engine = createTestEngine(t, { handle: readOnly, deps: { clock } })
  const health = createHealthMonitor({
    databases: [{ name: 'ro', statements: t.pool, drainer: engine.drainer, listener: null }],
    schemaCurrent: ['ro'],
    // Its `select 1` may answer late on a starved machine: the test is about the claims' record.
    probeTimeoutMs: 20_000,
    wedgedAfterMs: 120_000,
    monotonicNow: () => monotonicNow(clock),
  })
  const claimErrors = () =>
    engine.events.events.filter((e) => e.type === 'loop_error' && e.where === 'claim').length
  const nextClaimError = async () => {
    const seen = claimErrors()
    await pollUntil(async () => (claimErrors() > seen ? true : undefined))
  }
  try {
    await engine.start()
    await enqueue(t)
    await nextClaimError()
    // An hour ahead on the wall clock, a second on the monotonic one: failing for a second.
    c.wall += 3_600_000
    c.mono += 1_000
    expect((await health.readiness())[0]!.problem).toBeNull()
    // 30 s on, and a claim failed again since: unready, for as long as they have failed.
    c.mono += 30_000
    await nextClaimError()
    expect((await health.readiness())[0]!.problem).toBe(
      'claims have failed for 31s (SQLSTATE 25006); see the logs',
    )
  } finally {
    await engine.stop(0)
    await readOnly.close()
  }
})
