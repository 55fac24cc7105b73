// The chaos soak's provider-slot check: the most sendMail requests open at the Graph fake at once, and what came before each excess.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sendPeak, sendPeakProblems } from '../faults/chaos/send-peak.ts'
import type { GraphRequestRecord } from '../support/fake-graph.ts'
import { sendRecord } from '../support/graph-request-record.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const request = (kind: GraphRequestRecord['kind'], at: number, answeredAt: number | null) =>
  ({ ...sendRecord(null, at, answeredAt), kind }) satisfies GraphRequestRecord

test('sends overlapping count; lookups do not; an answer at an arrival’s moment frees its slot first', () => {
  const p = sendPeak(
    [
      request('sendMail', 100, 300),
      request('sendMail', 150, 200),
      request('lookup', 160, 400),
      request('sendMail', 200, 250),
    ],
    2,
    [],
    1_000,
    50,
  )
  expect(p).toEqual({ peak: 2, excesses: [] })
})

test('a send never answered stays open to the end; each excess names the actions within its window', () => {
  const p = sendPeak(
    [request('sendMail', 100, null), request('sendMail', 500, 600), request('sendMail', 550, 560)],
    2,
    [
      { at: 10, what: 'too early' },
      { at: 480, what: 'postgres crash (800 ms)' },
      { at: 540, what: 'terminated 3 backends' },
    ],
    1_000,
    100,
  )
  expect(p.peak).toBe(3)
  expect(p.excesses.map((e) => ({ at: e.at, open: e.open, n: e.before.length }))).toEqual([
    { at: 550, open: 3, n: 2 },
  ])
  expect(p.excesses[0]!.before[0]).toEndWith(' postgres crash (800 ms)')
})

test('an excess is a problem unless a Postgres outage came within its window or an older release ran', () => {
  const sends = [request('sendMail', 100, 200), request('sendMail', 150, 200)]
  const after = (what: string) => sendPeak(sends, 1, [{ at: 120, what }], 1_000, 100)
  expect(sendPeakProblems(after('terminated 3 backends'), 1, false)).toHaveLength(1)
  expect(sendPeakProblems(after('terminated 3 backends'), 1, false)[0]).toContain(
    '2 sendMail requests open at Graph',
  )
  expect(sendPeakProblems(after('postgres crash (800 ms)'), 1, false)).toEqual([])
  expect(sendPeakProblems(after('postgres up'), 1, false)).toEqual([])
  expect(sendPeakProblems(after('terminated 3 backends'), 1, true)).toEqual([])
})

test('a send its client closed before the answer (a cut, an abort) is open until the close', () => {
  const cut = { ...request('sendMail', 100, 400), closedAt: 150 }
  const p = sendPeak([cut, request('sendMail', 160, 200)], 1, [], 1_000, 100)
  expect(p).toEqual({ peak: 1, excesses: [] })
})
