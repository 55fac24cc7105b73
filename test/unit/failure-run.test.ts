// createFailureRun: a run of failures logged at its start, at a change of cause and every 5 minutes; its end returned.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createFailureRun } from '../../src/failure-run.ts'
import { createLogger } from '../../src/log.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function logged() {
  const lines: Record<string, unknown>[] = []
  let now = 1_000_000
  const run = createFailureRun({
    log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
    clock: { now: () => now },
    msg: 'claim failed; retrying',
    fields: { db: 'shop' },
  })
  return { lines, run, advance: (ms: number) => (now += ms) }
}

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
  code: 'ECONNREFUSED',
})

test('repeats of one cause are one line; a new cause and a 5-minute reminder are lines of their own', () => {
  const { lines, run, advance } = logged()
  run.failed(refused)
  for (let i = 0; i < 20; i++) {
    advance(4_000)
    run.failed(refused)
  }
  expect(lines).toEqual([
    expect.objectContaining({
      level: 'warn',
      msg: 'claim failed; retrying',
      db: 'shop',
      err: expect.objectContaining({ code: 'ECONNREFUSED' }),
    }),
  ])
  // The server is back but refuses the login: another cause, named at once.
  advance(4_000)
  run.failed(Object.assign(new Error('password authentication failed'), { code: '28P01' }))
  expect(lines[1]).toMatchObject({
    level: 'warn',
    err: { code: '28P01' },
    failures: 22,
    sinceMs: 84_000,
  })
  // Five minutes after the last line, one more says the run is still on.
  advance(299_000)
  run.failed(Object.assign(new Error('password authentication failed'), { code: '28P01' }))
  expect(lines).toHaveLength(2)
  advance(1_000)
  run.failed(Object.assign(new Error('password authentication failed'), { code: '28P01' }))
  expect(lines).toHaveLength(3)
  expect(lines[2]).toMatchObject({ failures: 24, sinceMs: 384_000 })
})

test('a success ends the run and returns it; the next failure starts a new one, logged', () => {
  const { lines, run, advance } = logged()
  expect(run.succeeded()).toBeNull()
  run.failed(refused)
  advance(2_500)
  run.failed(refused)
  advance(500)
  expect(run.succeeded()).toEqual({ failures: 2, ms: 3_000 })
  expect(run.succeeded()).toBeNull()
  run.failed(new Error('timeout exceeded when trying to connect'))
  expect(lines.map((l) => l.failures)).toEqual([undefined, undefined])
  expect(lines).toHaveLength(2)
})

test('at error, with no reminder, its own fields, and ended unheard once its last failure is stale', () => {
  const lines: Record<string, unknown>[] = []
  let now = 1_000_000
  const run = createFailureRun<{ code: string; status: number }>({
    log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
    clock: { now: () => now },
    msg: 'mailbox refused',
    level: 'error',
    remindMs: null,
    staleMs: 60_000,
    fieldsOf: (f) => ({ code: f.code }),
  })
  run.failed({ code: 'A', status: 404 })
  for (let i = 0; i < 30; i++) {
    now += 59_999
    run.failed({ code: 'A', status: 403 })
  }
  expect(run.current()).toMatchObject({ since: 1_000_000, failures: 31, logged: { status: 404 } })
  run.failed({ code: 'B', status: 403 })
  expect(lines.map(({ ts: _, ...l }) => l)).toEqual([
    { level: 'error', msg: 'mailbox refused', code: 'A' },
    { level: 'error', msg: 'mailbox refused', code: 'B' },
  ])
  now += 60_000
  expect(run.current()).toBeNull()
  expect(run.succeeded()).toBeNull()
  run.failed({ code: 'B', status: 403 })
  expect(run.current()).toMatchObject({ since: now, failures: 1 })
  expect(lines).toHaveLength(3)
})

/** A run on a clock moved only by the test: the wall reading stepped at will, the monotonic one advanced. */
function stepped(o: { remindMs?: number | null; staleMs?: number } = {}) {
  const lines: Record<string, unknown>[] = []
  const c = { wall: 1_750_000_000_000, mono: 1_000 }
  const run = createFailureRun({
    log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
    clock: { now: () => c.wall, monotonic: () => c.mono },
    msg: 'claim failed; retrying',
    ...o,
  })
  return { lines, run, c }
}

test('a wall clock stepped back neither holds the reminder off nor makes the run look younger', () => {
  const { lines, run, c } = stepped()
  run.failed(refused)
  c.wall -= 3_600_000
  c.mono += 300_000
  run.failed(refused)
  expect(lines).toHaveLength(2)
  expect(lines[1]).toMatchObject({ failures: 2, sinceMs: 300_000 })
  expect(run.succeeded()).toEqual({ failures: 2, ms: 300_000 })
})

test('a wall clock stepped forward neither ends a run as stale nor ages it; its start stays the wall time it was met', () => {
  const { lines, run, c } = stepped({ staleMs: 60_000 })
  run.failed(refused)
  const since = c.wall
  c.wall += 3_600_000
  c.mono += 4_000
  expect(run.current()).toMatchObject({ since, failures: 1, forMs: 4_000, lastAgoMs: 4_000 })
  run.failed(new Error('timeout exceeded when trying to connect'))
  expect(lines).toHaveLength(2)
  expect(lines[1]).toMatchObject({ failures: 2, sinceMs: 4_000 })
  c.mono += 2_000
  expect(run.current()).toMatchObject({ since, failures: 2, forMs: 6_000, lastAgoMs: 2_000 })
})
