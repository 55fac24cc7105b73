// The header's bound from lengths (headerFieldsBytesAtMost), which spares the byte count at send: never under the count, and a row past 256 KB still refused.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import {
  headerFieldsBytes,
  headerFieldsBytesAtMost,
  MAX_HEADER_BYTES,
} from '../../src/outbox/header-size.ts'
import { renderLease } from '../../src/outbox/render.ts'
import { claimedLease } from '../support/claimed-lease.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// One UTF-16 unit of 1, 2 and 3 UTF-8 bytes, a pair of 4, a lone surrogate (written as U+FFFD, 3).
const KINDS = ['a', 'é', '中', '😀', '\ud800']

const NONE = { subject: '', from: null, to: [], cc: [], replyTo: [], headers: {} }
// Each field alone holding `s` (the bound of one field is not made up by another's), then all.
const fieldsOf = (s: string) => {
  const each = {
    subject: s,
    from: { address: `${s}@example.com`, name: s },
    to: [{ address: 'a@example.com' }, { address: 'b@example.com', name: s }],
    cc: [{ address: `${s}@example.com` }],
    replyTo: [{ address: 'r@example.com', name: `${s}${s}` }],
    headers: { 'X-Two': s },
  }
  return [
    ...Object.entries(each).map(([k, v]) => ({ ...NONE, [k]: v })),
    // Two names alike but for case: the count takes one of them, the bound both.
    { ...NONE, headers: { 'X-One': s, 'x-one': s, 'X-Two': `${s}!` } },
    each,
  ]
}

describe('headerFieldsBytesAtMost', () => {
  test('is at least the byte count for every kind of character, field by field', () => {
    const strings = [...KINDS.map((k) => k.repeat(50)), KINDS.join('').repeat(20), '']
    for (const s of strings)
      for (const fields of fieldsOf(s))
        expect(headerFieldsBytesAtMost(fields)).toBeGreaterThanOrEqual(headerFieldsBytes(fields))
  })
})

describe('a stored row held to 256 KB at send', () => {
  const rowWithName = (name: string) =>
    claimedLease({
      message: { to: [{ address: 'a@example.com', name }], subject: 's', text: 't' },
    })

  test('a display name of 3-byte characters past the limit is refused, counted exactly', () => {
    // 87,382 × 3 bytes: past 262,144 by its name alone.
    const name = '中'.repeat(87_382)
    expect(() => renderLease(rowWithName(name), new Map(), 'from@example.com')).toThrow(
      `message has a header of at least ${headerFieldsBytes({
        subject: 's',
        from: null,
        to: [{ address: 'a@example.com', name }],
        cc: [],
        replyTo: [],
        headers: {},
      })} bytes`,
    )
  })

  test('an ASCII name past a third of the limit but within it is counted and sent', () => {
    const name = 'n'.repeat(200_000)
    expect(3 * name.length).toBeGreaterThan(MAX_HEADER_BYTES)
    const mail = renderLease(rowWithName(name), new Map(), 'from@example.com')
    expect(mail.to).toEqual([{ address: 'a@example.com', name }])
  })
})
