// The words saying a send's outcome is unknown are spelled in one file (src/outbox/outcome-unknown.ts), read from the sources.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { Glob } from 'bun'
import * as words from '../../src/outbox/outcome-unknown.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')

/**
 * Where the words may be spelled: their owner, and history-kind.ts's OLD_*, the words older
 * releases stored that their entries are read by (which must not follow a rewording). src/api
 * only describes the behaviour in its OpenAPI prose, which no row or entry carries.
 */
const OWNERS = new Set(['src/outbox/outcome-unknown.ts', 'src/outbox/history-kind.ts'])

/**
 * A line of code (not a comment, nor an SQL comment inside a statement) spelling that a send's
 * outcome, or whether it delivered the row, is unknown, in any of the words it has been given.
 */
const spells = (line: string) =>
  !/^\s*(\/\/|\*|\/\*|--)/.test(line) &&
  /outcome (is )?(unknown|not known)|unknown outcome|whether it delivered|delivery (is )?unknown|unknown whether/.test(
    line,
  )

test("no writer of a last_error or history entry spells a send's outcome unknown itself", async () => {
  const found: string[] = []
  let read = 0
  for (const file of new Glob('src/**/*.ts').scanSync({ cwd: ROOT })) {
    if (OWNERS.has(file) || file.startsWith('src/api/')) continue
    read++
    const lines = (await Bun.file(resolve(ROOT, file)).text()).split('\n')
    lines.forEach((line, i) => {
      if (spells(line)) found.push(`${file}:${i + 1}: ${line.trim()}`)
    })
  }
  expect(read).toBeGreaterThan(100)
  expect(found).toEqual([])
})

test('the check sees each wording in code and passes over comments', () => {
  expect(
    spells("  else 'the worker holding the lease stopped during the send; outcome unknown' ||"),
  ).toBe(true)
  expect(
    spells(
      "  'the worker holding the lease stopped before sending again; the earlier interrupted send's outcome unknown',",
    ),
  ).toBe(true)
  expect(
    spells(
      "  'cancelled; an interrupted send could not be looked up: whether it delivered the message is unknown',",
    ),
  ).toBe(true)
  expect(spells("  message: 'the send's outcome is not known',")).toBe(true)
  expect(spells("  message: 'an interrupted send, of unknown outcome',")).toBe(true)
  expect(spells(' * refused, cancels it, delivery unknown.')).toBe(false)
  expect(spells('               -- its outcome unknown, the mark kept')).toBe(false)
})

test('one phrasing per meaning, each naming the send it means and ending "outcome unknown"', () => {
  const clauses = Object.fromEntries(Object.entries(words).filter(([, v]) => typeof v === 'string'))
  expect(clauses).toEqual({
    OUTCOME_UNKNOWN: 'outcome unknown',
    EARLIER_SEND_OUTCOME_UNKNOWN: "the earlier interrupted send's outcome unknown",
  })
})
