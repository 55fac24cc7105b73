// The benchmark's process-per-system hosting (bench/systems/hosted.ts): starts, times, CPU and stalls cross over intact.

import {
  afterAll,
  beforeAll,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from 'bun:test'
import { join } from 'node:path'
import { hostedSystem } from '../../bench/systems/hosted.ts'
import { outboxEngineSystem } from '../../bench/systems/outbox-engine.ts'
import type { PgTraceEvent } from '../../bench/systems/pg-trace.ts'
import { openProbe, type Probe } from '../../bench/systems/probe.ts'
import type { BenchSystem } from '../../bench/systems/system.ts'
import { CHANNEL } from '../../src/outbox/listen-session.ts'
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

// A test that fails leaves its row sending (its host killed mid-run): the next tests' "recorded
// sent" waits count every row, so each starts from an empty outbox.
beforeEach(async () => {
  await sys.reset()
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
    // no later than it arrived here, give or take the conversion's error (half the round trip of
    // the clock reading the offset came from: a loaded machine's 0.3 ms put a start after its
    // arrival here).
    const err = sys.clientClockErrorMs!()
    expect(Number.isFinite(err)).toBe(true)
    expect(s.atMs).toBeGreaterThan(before - err)
    expect(s.atMs!).toBeLessThanOrEqual(s.receivedMs + err)
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

  test('a host started after the wall clock stepped an hour on still gives its times on this process clock', async () => {
    // Its performance.timeOrigin an hour past this process's (a VM's clock stepped between the two
    // starts: four full runs failed at one moment): its epoch readings are an hour off this one's.
    const stepped = hostedSystem(
      'outbox_engine',
      t.url,
      outboxEngineSystem('u', t.url, probe),
      undefined,
      {
        BUN_OPTIONS: `--preload ${join(import.meta.dir, '../support/stepped-time-origin.ts')}`,
        TIME_ORIGIN_STEP_MS: String(3_600_000),
      },
    )
    try {
      const starts: { key: number; atMs: number | undefined; receivedMs: number }[] = []
      const launched = performance.now()
      await stepped.start({
        concurrency: 1,
        onStart: (key, atMs) => starts.push({ key, atMs, receivedMs: performance.now() }),
        watchStallsMs: 10,
      })
      const before = performance.now()
      await stepped.insertOne(3)
      await until('the start of row 3', () => starts.some((s) => s.key === 3))
      const s = starts.find((x) => x.key === 3)!
      const err = stepped.clientClockErrorMs!()
      expect(Number.isFinite(err)).toBe(true)
      expect(s.atMs).toBeGreaterThan(before - err)
      expect(s.atMs!).toBeLessThanOrEqual(s.receivedMs + err)
      await until('row 3 recorded sent', async () => (await stepped.remaining()) === 0)
      await stepped.stop()
      const after = performance.now()
      for (const x of await stepped.clientStalls!()) {
        expect(x.from).toBeGreaterThan(launched - err)
        expect(x.to).toBeLessThanOrEqual(after + err)
      }
    } finally {
      await stepped.dispose?.()
    }
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

  test('with BENCH_PG_TRACE=1 the host reports its pg statements and notifications, on this process clock', async () => {
    const was = process.env.BENCH_PG_TRACE
    process.env.BENCH_PG_TRACE = '1'
    const traced = hostedSystem('outbox_engine', t.url, outboxEngineSystem('w', t.url, probe))
    try {
      let started: number | undefined
      await traced.start({ concurrency: 1, onStart: (_k, atMs) => (started ??= atMs) })
      // Quiet once the LISTEN session's prime (the notified claim for no row, after its LISTEN) and
      // the sweep's claim after it have answered, with no statement out: a row committed now is the
      // notification's to claim. A pool connection is primed with the same claim, and the drainer's
      // start claims on it, while the session may still connect or probe its LISTEN: a row committed
      // then was not notified to it (no LISTEN yet) or was swept before its notified claim answered.
      const seen: PgTraceEvent[] = []
      await until('the LISTEN session primed and swept', async () => {
        seen.push(...(await traced.clientTrace!()))
        const listened = seen.find((e) => e.kind === 'answer' && e.what === `listen ${CHANNEL}`)
        const primed =
          listened &&
          seen.find(
            (e) =>
              e.kind === 'answer' &&
              e.what === 'outbox_claim_notified' &&
              e.client === listened.client &&
              e.at >= listened.at,
          )
        const count = (kind: PgTraceEvent['kind']) => seen.filter((e) => e.kind === kind).length
        return (
          primed !== undefined &&
          seen.some(
            (e) => e.kind === 'answer' && e.what === 'outbox_claim_batch' && e.at > primed.at,
          ) &&
          count('call') === count('answer')
        )
      })
      const before = performance.now()
      await traced.insertOne(9)
      await until('the start of row 9', () => started !== undefined)
      const after = performance.now()
      await until('row 9 recorded sent', async () => (await traced.remaining()) === 0)
      await traced.stop()
      const trace = await traced.clientTrace!()
      // The row's pickup, in order: its notification heard, the notified claim called and answered.
      const notify = trace.find((e) => e.kind === 'notify' && e.what === CHANNEL)
      expect(notify).toBeDefined()
      const call = trace.find(
        (e) => e.kind === 'call' && e.what === 'outbox_claim_notified' && e.at >= notify!.at,
      )
      expect(call).toBeDefined()
      const answer = trace.find(
        (e) =>
          e.kind === 'answer' &&
          e.client === call!.client &&
          e.what === call!.what &&
          e.at >= call!.at,
      )
      // Host times against each other exactly (one offset); against this process's, within its error.
      const err = traced.clientClockErrorMs!()
      expect(Number.isFinite(err)).toBe(true)
      expect(answer!.at).toBeGreaterThanOrEqual(call!.at)
      expect(notify!.at).toBeGreaterThan(before - err)
      expect(answer!.at).toBeLessThanOrEqual(started!)
      expect(started!).toBeLessThanOrEqual(after + err)
      // Taken: the next read starts empty.
      expect(await traced.clientTrace!()).toEqual([])
    } finally {
      if (was === undefined) delete process.env.BENCH_PG_TRACE
      else process.env.BENCH_PG_TRACE = was
      await traced.dispose?.()
    }
  })

  test('its heap is read by type with no collection first: the cells a pickup allocates count', async () => {
    // Bun's GC timer off in that process alone, so that no collection runs between the readings.
    const heaped = hostedSystem(
      'outbox_engine',
      t.url,
      outboxEngineSystem('v', t.url, probe),
      undefined,
      { BUN_GC_TIMER_DISABLE: '1' },
    )
    try {
      let started = false
      await heaped.start({ concurrency: 1, onStart: () => (started = true) })
      await heaped.clientGc!()
      const before = await heaped.clientHeap!()
      await heaped.insertOne(5)
      await until('the start of row 5', () => started)
      const after = await heaped.clientHeap!()
      // The claim's and the send's promises, which no collection has taken yet.
      expect(after.Promise ?? 0).toBeGreaterThan(before.Promise ?? 0)
      await until('row 5 recorded sent', async () => (await heaped.remaining()) === 0)
      await heaped.stop()
    } finally {
      await heaped.dispose?.()
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
