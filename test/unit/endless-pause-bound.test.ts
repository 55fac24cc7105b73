// pauseLeftMs, the one parse of a pause's remainder: every answer the database can give reads as a finite wait, and only it makes a PauseLeftMs.
import { expect, setDefaultTimeout, test } from 'bun:test'
import {
  ENDLESS_PAUSE_RECHECK_MS,
  isEndlessPause,
  type PauseLeftMs,
  pauseLeftMs,
} from '../../src/outbox/endless-pause.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(5_000)

test('a pause with no end reads as a recheck, one ended long ago as 0, a finite one as it is', () => {
  const answers = [
    Number.POSITIVE_INFINITY,
    'Infinity',
    Number.NEGATIVE_INFINITY,
    '-Infinity',
    1_500,
    '2.5',
    0,
    -3,
  ]
  expect<unknown>(answers.map((a) => [pauseLeftMs(a), isEndlessPause(a)])).toEqual([
    [ENDLESS_PAUSE_RECHECK_MS, true],
    [ENDLESS_PAUSE_RECHECK_MS, true],
    [0, false],
    [0, false],
    [1_500, false],
    [2.5, false],
    [0, false],
    [0, false],
  ])
})

test('a plain number is no PauseLeftMs: a remainder read raw cannot reach a reader that asks for one', () => {
  // @ts-expect-error Infinity unparsed (typecheck fails if PauseLeftMs accepted any number)
  const raw: PauseLeftMs = Number.POSITIVE_INFINITY
  expect<number>(pauseLeftMs(raw)).toBe(ENDLESS_PAUSE_RECHECK_MS)
})
