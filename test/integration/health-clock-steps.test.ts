// Liveness and readiness ages (a silent worker loop, failing claims) timed on the monotonic clock, whatever the wall clock does meanwhile.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, monotonicNow, systemClock } from '../../src/clock.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine } from '../support/engine.ts'
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
  const engine = createTestEngine(t, { deps: { clock }, config: { listenMode: 'poll' } })
  const health = createHealthMonitor({
    databases: [{ name: 'shop', statements: t.pool, drainer: engine.drainer, listener: null }],
    wedgedAfterMs: 120_000,
    // As serve wires them: the monitor and the loop read one system clock.
    now: () => monotonicNow(clock),
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
