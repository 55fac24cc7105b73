// The chaos's reading of a worker's exit after SIGTERM: a lease the chaos took, found lost during the stop, is no problem.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { stopVerdict } from '../faults/chaos/stop-verdict.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const tail = (lines: string[]) => (n: number) => lines.slice(-n).join('\n')
const line = (msg: string, extra = '') =>
  `{"ts":"2026-12-07T09:28:05.745Z","level":"warn","msg":"${msg}"${extra}}`

// Seed 5663 (hold, harsh, slow database, older binary), chaos-w2-6 at the calm's final SIGTERM:
// Graph accepted rows 132 and 108 just after Postgres crashed; their recording failed through
// three crashes, their leases expired and were reclaimed (held, ambiguous_send) as the calm began.
const lostAtStop = [
  line('stopping', ',"reason":"SIGTERM","graceSeconds":3'),
  line('lease lost before the outcome was recorded', ',"outboxId":"132","outcome":"sent"'),
  line('lease lost before the outcome was recorded', ',"outboxId":"108","outcome":"sent"'),
  line(
    'stopped with accepted sends unrecorded: held for an operator once their leases expire (failed ambiguous_send, not sent again)',
    ',"unrecorded":[{"db":"default","ids":["132","108"]}]',
  ),
]

test('exit 1 naming sends unrecorded whose leases the stop found lost: unrecorded, not a problem', () => {
  expect(stopVerdict(1, tail(lostAtStop))).toBe('unrecorded')
})

test('exit 0 is clean; exit 1 unrecorded with no lease found lost, or any other exit, is a problem', () => {
  expect(stopVerdict(0, tail([line('stopping'), line('stopped')]))).toBe('clean')
  expect(stopVerdict(1, tail([lostAtStop[0]!, lostAtStop[3]!]))).toBe('problem')
  expect(stopVerdict(1, tail([line('stopping'), line('stop unfinished: exiting')]))).toBe('problem')
  expect(stopVerdict(143, tail(lostAtStop))).toBe('problem')
})
