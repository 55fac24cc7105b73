// createClaimFailures: claims failing in a row as readiness reads them (since, last, SQLSTATE), the loop's wait, and the run's lines.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { createClaimFailures } from '../../src/outbox/claim-failures.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function setup() {
  let now = 1_000_000
  const lines: Record<string, unknown>[] = []
  const clock: Clock = { now: () => now, sleep: async () => {} }
  const failures = createClaimFailures(
    clock,
    createLogger('debug', (l) => lines.push(JSON.parse(l))),
  )
  return { failures, lines, advance: (ms: number) => (now += ms) }
}

const pgError = (code: string) => Object.assign(new Error(`failed (${code})`), { code })

test('since the first failure of a run, how long and how long ago the last, its SQLSTATE (none for a code that is not one); null once a claim succeeds', () => {
  const { failures, advance } = setup()
  const failing = (since: number, forMs: number, lastAgoMs: number, sqlstate: string | null) => ({
    since,
    forMs,
    lastAgoMs,
    sqlstate,
    retrying: true,
  })
  expect(failures.current()).toBeNull()
  failures.failed(pgError('25006'))
  expect(failures.current()).toEqual(failing(1_000_000, 0, 0, '25006'))
  advance(2_000)
  failures.failed(pgError('25006'))
  const held = failures.current()
  expect(held).toEqual(failing(1_000_000, 2_000, 0, '25006'))
  advance(3_000)
  expect(failures.current()).toEqual(failing(1_000_000, 5_000, 3_000, '25006'))
  failures.failed(pgError('ECONNREFUSED'))
  expect(failures.current()).toEqual(failing(1_000_000, 5_000, 0, null))
  // What was read before stays as it was read.
  expect(held).toEqual(failing(1_000_000, 2_000, 0, '25006'))
  advance(1_000)
  failures.failed(new Error('no code'))
  expect(failures.current()).toEqual(failing(1_000_000, 6_000, 0, null))
  failures.failed(pgError('57P01'))
  expect(failures.current()).toEqual(failing(1_000_000, 6_000, 0, '57P01'))
  failures.succeeded()
  expect(failures.current()).toBeNull()
  advance(1_000)
  failures.failed(pgError('57P01'))
  expect(failures.current()).toEqual(failing(1_007_000, 0, 0, '57P01'))
})

test('retrying from a failure until the loop waits for a wake instead, and again from the next failure', () => {
  const { failures, advance } = setup()
  const retrying = () => failures.current()?.retrying
  failures.idle()
  expect(failures.current()).toBeNull()
  failures.failed(pgError('57014'))
  advance(20_000)
  expect(retrying()).toBe(true)
  failures.idle()
  expect(failures.current()).toMatchObject({ forMs: 20_000, lastAgoMs: 20_000, retrying: false })
  failures.failed(pgError('57014'))
  expect(retrying()).toBe(true)
  failures.succeeded()
  failures.failed(pgError('57014'))
  expect(retrying()).toBe(true)
})

test('its lines, field by field: the run at warn, its end at info only after more than one failure', () => {
  const { failures, lines, advance } = setup()
  failures.failed(pgError('25006'))
  failures.succeeded()
  failures.failed(pgError('25006'))
  advance(2_000)
  failures.failed(pgError('25006'))
  advance(3_000)
  failures.failed(pgError('57P01'))
  advance(300_000)
  failures.failed(pgError('57P01'))
  advance(1_000)
  failures.succeeded()
  failures.succeeded()
  expect(
    lines.map(
      ({ ts: _, err, ...l }): Record<string, unknown> => ({
        ...l,
        code: (err as { code?: string })?.code,
      }),
    ),
  ).toEqual([
    { level: 'warn', msg: 'claim failed; retrying', code: '25006' },
    { level: 'warn', msg: 'claim failed; retrying', code: '25006' },
    { level: 'warn', msg: 'claim failed; retrying', code: '57P01', failures: 3, sinceMs: 5_000 },
    { level: 'warn', msg: 'claim failed; retrying', code: '57P01', failures: 4, sinceMs: 305_000 },
    {
      level: 'info',
      msg: 'claims succeed again',
      code: undefined,
      failures: 4,
      failingMs: 306_000,
    },
  ])
  expect(lines.map((l) => Object.keys(l).join())).toEqual([
    'ts,level,msg,err',
    'ts,level,msg,err',
    'ts,level,msg,err,failures,sinceMs',
    'ts,level,msg,err,failures,sinceMs',
    'ts,level,msg,failures,failingMs',
  ])
})

test('the wait before the next claim: jittered, doubling to 5 s, from 0.5 s again after a success', () => {
  const { failures } = setup()
  const waits = (n: number) => Array.from({ length: n }, () => failures.failed(pgError('25006')))
  const bounds = [500, 1_000, 2_000, 4_000, 5_000, 5_000]
  const first = waits(6)
  first.forEach((w, i) => {
    expect(w).toBeGreaterThanOrEqual(bounds[i]! / 2)
    expect(w).toBeLessThanOrEqual(bounds[i]!)
  })
  failures.succeeded()
  const [again] = waits(1)
  expect(again).toBeLessThanOrEqual(500)
})
