// isBlank: which characters make a body that shows nothing, and a stored message's bodies judged by it at send.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { isBlank } from '../../src/outbox/blank-body.ts'
import type { RenderError } from '../../src/outbox/render-error.ts'
import { sendableStoredBodies } from '../../src/outbox/stored-message.ts'
import { BLANK_BODIES, NOT_BLANK_BODIES } from '../support/blank-bodies.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

describe('isBlank', () => {
  test('the characters README names, and no other code point', () => {
    const named = [
      [0x09, 0x0d],
      [0x20, 0x20],
      [0x85, 0x85],
      [0xa0, 0xa0],
      [0x1680, 0x1680],
      [0x2000, 0x200d],
      [0x2028, 0x2029],
      [0x202f, 0x202f],
      [0x205f, 0x2060],
      [0x3000, 0x3000],
      [0xfeff, 0xfeff],
    ].flatMap(([a, b]) => Array.from({ length: b! - a! + 1 }, (_, i) => a! + i))
    const blank: number[] = []
    for (let cp = 1; cp <= 0x10ffff; cp++)
      if ((cp < 0xd800 || cp > 0xdfff) && isBlank(String.fromCodePoint(cp))) blank.push(cp)
    expect(blank).toEqual(named)
    expect(isBlank('')).toBe(true)
  })

  test('a body of them is blank, whatever its length; one other character makes it a body', () => {
    for (const [what, body] of BLANK_BODIES) expect([what, isBlank(body)]).toEqual([what, true])
    for (const [what, body] of NOT_BLANK_BODIES)
      expect([what, isBlank(body)]).toEqual([what, false])
    expect(isBlank(' \u3000'.repeat(1_000_000))).toBe(true)
    expect(isBlank(`${' '.repeat(2_000_000)}x`)).toBe(false)
  })
})

describe('sendableStoredBodies', () => {
  const refusal = (text: string | null, html: string | null, attachments?: unknown) => {
    try {
      sendableStoredBodies({ text, html }, attachments)
      return null
    } catch (e) {
      return [(e as RenderError).code, (e as Error).message]
    }
  }
  const words = (field: string) => [
    'invalid_message',
    `message.${field} must not be empty ("" is no body): a message needs message.text or message.html`,
  ]

  test('a row stored before 0175 whose only body is blank fails as one of "" does; beside a body or a file it is sent', () => {
    const file = [{ filename: 'a.pdf', contentBase64: 'JVBERi0=' }]
    for (const [what, blank] of BLANK_BODIES) {
      expect([
        what,
        refusal(blank, null),
        refusal(null, blank),
        refusal(blank, ''),
        refusal('', blank),
        refusal(blank, null, []),
        refusal(blank, '<p>Hi</p>'),
        refusal('Hi', blank),
        refusal(blank, null, file),
      ]).toEqual([
        what,
        words('text'),
        words('html'),
        words('text'),
        words('text'),
        words('text'),
        null,
        null,
        null,
      ])
    }
    for (const [what, body] of NOT_BLANK_BODIES)
      expect([what, refusal(body, null), refusal(null, body)]).toEqual([what, null, null])
  })
})
