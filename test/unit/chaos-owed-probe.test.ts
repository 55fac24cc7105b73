// The chaos soak's owed-probe check: spans from the exact pacing log, and the one-at-a-time rule judged on the Graph fake's request log.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { judgeOwedSpan } from '../faults/chaos/owed-span-judge.ts'
import { owedSpans } from '../faults/chaos/owed-spans.ts'
import type { PacingChange } from '../faults/chaos/pacing-log.ts'
import type { GraphRequestRecord } from '../support/fake-graph.ts'
import { sendRecord } from '../support/graph-request-record.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const BOX = 'outbox@contoso.example'
let seq = 0
const change = (at: number, probeOwed: boolean, probeId: string | null = null, mailbox = BOX) =>
  ({ seq: seq++, at, op: 'UPDATE', mailbox, probeOwed, probeId }) satisfies PacingChange
const send = sendRecord

test('a span runs from the owing write to the clearing one, per mailbox, naming every probe; one still owed is open', () => {
  const spans = owedSpans([
    change(100, false),
    change(200, true),
    change(250, false, null, 'other@contoso.example'),
    change(300, true, '7'),
    change(400, true, null),
    change(450, true, '9'),
    change(500, false),
    change(600, true, null, 'other@contoso.example'),
  ])
  expect(spans.map((s) => ({ ...s, probeIds: [...s.probeIds] }))).toEqual([
    { mailbox: BOX, from: 200, to: 500, probeIds: ['7', '9'] },
    { mailbox: 'other@contoso.example', from: 600, to: Infinity, probeIds: [] },
  ])
})

test('one at a time: a send starting before any earlier one of the span is answered breaks it (a probe that claimed a batch)', () => {
  const span = { mailbox: BOX, from: 1_000, to: 9_000, probeIds: new Set(['1']) }
  const requests = [
    send('1', 2_000, 2_400),
    send('2', 2_500, 4_000), // answered last so far
    send('3', 2_600, 2_700), // before 2's answer
    send('4', 3_000, 3_100), // after 3's answer, still before 2's
    send('5', 4_000, 4_100), // at 2's answer: in turn
    send('6', 5_000, 5_100, 'other@contoso.example'),
    send('7', 9_500, 9_600), // after the span
  ]
  const j = judgeOwedSpan(span, requests, (q) => q.at - 5)
  expect(j.sends.map((q) => q.outboxId)).toEqual(['1', '2', '3', '4', '5'])
  expect(j.breaches.map((b) => [b.q.outboxId, b.before?.outboxId])).toEqual([
    ['3', '2'],
    ['4', '2'],
  ])
})

test('a send whose last check came before the owing write is in flight, exempt; one carrying no message breaks the span', () => {
  const span = { mailbox: BOX, from: 1_000, to: 9_000, probeIds: new Set(['1']) }
  const requests = [send('0', 1_010, null), send('1', 2_000, 2_100), send(null, 3_000, 3_100)]
  const checked = new Map([
    ['0', 990],
    ['1', 1_990],
  ])
  const j = judgeOwedSpan(span, requests, (q) => checked.get(q.outboxId ?? ''))
  expect({ sends: j.sends.length, inFlight: j.inFlight }).toEqual({ sends: 2, inFlight: 1 })
  expect(j.breaches.map((b) => [b.q.outboxId, b.before?.outboxId])).toEqual([[null, undefined]])
})

const lookup = (id: string | null, at: number, answeredAt: number | null) =>
  ({ ...send(id, at, answeredAt), kind: 'lookup' }) satisfies GraphRequestRecord

test("a lookup is the probe's own while it is owed: another row's, claimed after the owing write, breaks the span; one claimed before is in flight, exempt", () => {
  const span = { mailbox: BOX, from: 1_000, to: 9_000, probeIds: new Set(['1']) }
  const requests = [
    lookup('0', 1_020, 1_100), // claimed before the owing: its gate may have read before the pause
    lookup('1', 2_000, 2_100), // the probe's own
    send('1', 2_200, 2_300),
    lookup('2', 3_000, 3_100), // claimed after the owing, not the probe
  ]
  const claimed = new Map([
    ['0', 990],
    ['1', 1_500],
    ['2', 2_900],
  ])
  const j = judgeOwedSpan(
    span,
    requests,
    (q) => q.at - 5,
    (q) => claimed.get(q.outboxId ?? ''),
  )
  expect(j.lookups.map((q) => q.outboxId)).toEqual(['1', '2'])
  expect(j.inFlightLookups).toBe(1)
  expect(j.breaches.map((b) => [b.q.kind, b.q.outboxId, b.notProbe ?? false])).toEqual([
    ['lookup', '2', true],
  ])
})

test("one at a time holds across lookups and sends: the probe's lookup before an earlier send's answer breaks it, and a send before the lookup's answer", () => {
  const span = { mailbox: BOX, from: 1_000, to: 9_000, probeIds: new Set(['1', '2']) }
  const requests = [
    send('1', 2_000, 2_500),
    lookup('2', 2_100, 2_200), // before 1's answer
    lookup('2', 3_000, 3_400),
    send('2', 3_300, 3_500), // before its own lookup's answer
  ]
  const j = judgeOwedSpan(
    span,
    requests,
    (q) => q.at - 5,
    () => 1_500,
  )
  expect(j.breaches.map((b) => [b.q.kind, b.q.at, b.before?.at])).toEqual([
    ['lookup', 2_100, 2_000],
    ['sendMail', 3_300, 3_000],
  ])
})
