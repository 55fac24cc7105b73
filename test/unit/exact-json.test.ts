// parseExactNumbers: JSON numbers kept as written where a JS number would change them, strings untouched.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { ExactNumber, holdsNumber, parseExactNumbers } from '../../src/outbox/exact-json.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

describe('parseExactNumbers', () => {
  test('text whose numbers JSON.parse gives back exactly is left to JSON.parse (null)', () => {
    expect(parseExactNumbers('{"a": 12.5, "b": [1, -2, 0.1], "c": "12.50"}')).toBeNull()
  })

  test('12.50, 10.00 and a bigint past 2^53 keep their text; other values parse as JSON.parse does', () => {
    const v = parseExactNumbers(
      '{"total": 12.50, "id": 9007199254740993, "n": 3, "s": "1.10 \\"2.00\\"", "items": [{"price": 10.00}]}',
    ) as Record<string, unknown>
    expect(v.total).toBeInstanceOf(ExactNumber)
    expect(String(v.total)).toBe('12.50')
    expect(`${v.id}`).toBe('9007199254740993')
    expect(Number(v.total)).toBe(12.5)
    expect(v.n).toBe(3)
    expect(v.s).toBe('1.10 "2.00"')
    expect(JSON.stringify(v.items)).toBe('[{"price":10.00}]')
  })

  test('holdsNumber finds a number at any depth, and nothing in strings', () => {
    expect(holdsNumber({ a: [{ b: 1 }] })).toBe(true)
    expect(holdsNumber({ a: ['1'], b: null, c: true })).toBe(false)
    expect(holdsNumber(null)).toBe(false)
  })

  // Postgres takes jsonb nested about 10,000 deep (its stack depth limit); a claim's text holding
  // one in a source row must parse, or the claim's rows, already leased, were never sent.
  test('values nested 10,000 deep parse and are searched without exhausting the stack', () => {
    const deep = (n: string) => `{"a": ${'['.repeat(10_000)}${n}${']'.repeat(10_000)}, "b": 1.50}`
    const v = parseExactNumbers(deep('2.50')) as { a: unknown; b: unknown }
    let inner: unknown = v.a
    for (let i = 0; i < 10_000; i++) inner = (inner as unknown[])[0]
    expect([String(inner), String(v.b)]).toEqual(['2.50', '1.50'])
    expect(inner).toBeInstanceOf(ExactNumber)
    expect(holdsNumber(JSON.parse(`${'['.repeat(100_000)}1${']'.repeat(100_000)}`))).toBe(true)
    expect(holdsNumber(JSON.parse(`${'['.repeat(100_000)}"1"${']'.repeat(100_000)}`))).toBe(false)
  })
})
