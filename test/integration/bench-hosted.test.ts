// The benchmark's process-per-system hosting (bench/systems/hosted.ts): starts, times, CPU and stalls cross over intact.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { hostedSystem } from '../../bench/systems/hosted.ts'
import { outboxEngineSystem } from '../../bench/systems/outbox-engine.ts'
import { openProbe, type Probe } from '../../bench/systems/probe.ts'
import type { BenchSystem } from '../../bench/systems/system.ts'
import { createTestDb, type TestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
let probe: Probe
let sys: BenchSystem

beforeAll(async () => {
  t = await createTestDb()
  probe = await openProbe(t.url)
  sys = hostedSystem('outbox_engine', t.url, outboxEngineSystem('outbox_engine', t.url, probe))
})

afterAll(async () => {
  await sys.dispose?.()
  await probe.close()
  await t.drop()
})

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = performance.now() + ms
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(10)
  }
}

describe('a system hosted in its own process', () => {
  test('its workers run in another process, and each start comes back with the time it happened there', async () => {
    const starts: { key: number; atMs: number | undefined; receivedMs: number }[] = []
    await sys.start({
      concurrency: 2,
      onStart: (key, atMs) => starts.push({ key, atMs, receivedMs: performance.now() }),
      watchStallsMs: 10,
    })
    const pid = sys.clientPid?.()
    expect(typeof pid).toBe('number')
    expect(pid).not.toBe(process.pid)

    const before = performance.now()
    await sys.insertOne(7)
    await until('the start of row 7', () => starts.some((s) => s.key === 7))
    const s = starts.find((x) => x.key === 7)!
    // Timed in the host process, converted to this process's clock: after the insert was issued,
    // no later than it arrived here.
    expect(s.atMs).toBeGreaterThan(before)
    expect(s.atMs!).toBeLessThanOrEqual(s.receivedMs)
    await until('row 7 recorded sent', async () => (await sys.remaining()) === 0)

    await sys.stop()
    expect(await sys.clientCpuMicros!()).toBeGreaterThan(0)
    const stalls = await sys.clientStalls!()
    expect(Array.isArray(stalls)).toBe(true)
    for (const x of stalls) expect(x.to).toBeGreaterThan(x.from)

    // The same process serves the next run (its code stays compiled from drain to drain).
    await sys.start({ concurrency: 2 })
    expect(sys.clientPid?.()).toBe(pid!)
    await sys.stop()
  })

  test('a key it does not know is refused before any process starts', () => {
    expect(() =>
      hostedSystem('no_such_system', t.url, outboxEngineSystem('x', t.url, probe)),
    ).toThrow(/unknown system "no_such_system"/)
  })

  test('a host process that dies fails the request in flight with its exit, not a hang', async () => {
    const doomed = hostedSystem('outbox_engine', t.url, outboxEngineSystem('z', t.url, probe))
    try {
      await doomed.start({ concurrency: 1 })
      process.kill(doomed.clientPid!()!, 'SIGKILL')
      await expect(doomed.stop()).rejects.toThrow(/its process (exited|is unreachable)/)
    } finally {
      await doomed.dispose?.()
    }
  })

  test('dispose ends the host process', async () => {
    const other = hostedSystem('outbox_engine', t.url, outboxEngineSystem('y', t.url, probe))
    await other.start({ concurrency: 1 })
    const pid = other.clientPid!()!
    await other.stop()
    await other.dispose?.()
    expect(() => process.kill(pid, 0)).toThrow()
  })
})
