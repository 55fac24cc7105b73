// The words saying a send may have delivered a row are spelled in one file (src/outbox/may-have-delivered.ts), read from the sources.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { Glob } from 'bun'
import * as words from '../../src/outbox/may-have-delivered.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')

/**
 * Where the words may be spelled: their owner, and history-kind.ts's OLD_*, the words of releases
 * before sql/0189 that their entries are read by (which must not follow a rewording). src/api only
 * describes the behaviour in its OpenAPI prose, which no row or entry carries.
 */
const OWNERS = new Set(['src/outbox/may-have-delivered.ts', 'src/outbox/history-kind.ts'])

/** A line of code (not a comment, nor an SQL comment inside a statement) spelling the words. */
const spells = (line: string) =>
  !/^\s*(\/\/|\*|\/\*|--)/.test(line) && /may have (been )?delivered/.test(line)

test('no writer of a last_error or history entry spells "may have delivered" itself', async () => {
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

test('the check sees a spelling in code and passes over comments', () => {
  expect(spells("  message: 'cancelled; an interrupted send may have delivered it',")).toBe(true)
  expect(spells("  then 'a previous send was interrupted and may have been delivered'")).toBe(true)
  expect(spells(' * that send may have delivered it, so the text says')).toBe(false)
  expect(spells('               -- the send that may have delivered it, as its')).toBe(false)
})

test('one phrasing per meaning, each naming the send it means and ending "may have delivered it"', () => {
  const clauses = Object.fromEntries(Object.entries(words).filter(([, v]) => typeof v === 'string'))
  expect(clauses).toEqual({
    INTERRUPTED_SEND_MAY_HAVE_DELIVERED: 'an interrupted send may have delivered it',
    THAT_SEND_MAY_HAVE_DELIVERED: 'that send may have delivered it',
    EARLIER_SEND_MAY_HAVE_DELIVERED: 'an earlier interrupted send may have delivered it',
    BOTH_SENDS_MAY_HAVE_DELIVERED:
      'that send, or an earlier interrupted one, may have delivered it',
  })
})
