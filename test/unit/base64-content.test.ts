// base64Content: the pattern's verdict and words on random and chosen texts; a file in one line decoded, never matched.
import { afterEach, describe, expect, setDefaultTimeout, spyOn, test } from 'bun:test'
import { type Base64Verdict, base64Content } from '../../src/outbox/base64-content.ts'
import { sendableAttachments } from '../../src/outbox/stored-attachments.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** sendableAttachments' check before base64Content, as round 56 shipped it: the reference. */
function patternVerdict(text: string): Base64Verdict {
  if (!/^[A-Za-z0-9+/\t\n\v\f\r ]*(?:={1,2}[\t\n\v\f\r ]*)?$/.test(text))
    return { refused: 'alphabet' }
  const content = text.replace(/\s+/g, '')
  return content.length % 4 === 0 ? { content } : { refused: 'groups', characters: content.length }
}

// A seeded generator (mulberry32): a failing text is found again from the seed the test names.
function generator(seed: number) {
  let s = seed >>> 0
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T
  return { next, int, pick }
}

const ASCII_WHITESPACE = ['\t', '\n', '\v', '\f', '\r', ' ', '\r\n']
// Whitespace to JavaScript's \s (and an ICU database's) that base64 does not take, and strays.
const STRAYS = ['\u00a0', '\u2028', '\ufeff', '\u3000', '-', '_', '*', '.', 'é', '😀', '\0', '=']

/** A text near base64: a file's encoding (standard or URL-safe), then zero to three mutations. */
function nearBase64(g: ReturnType<typeof generator>, bytes: number): string {
  const file = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) file[i] = g.int(256)
  let text = g.next() < 0.15 ? file.toBase64({ alphabet: 'base64url' }) : file.toBase64()
  for (let m = g.int(4); m > 0; m--) {
    const at = g.int(text.length + 1)
    switch (g.int(9)) {
      case 0: // whitespace anywhere, padding included
        text = text.slice(0, at) + g.pick(ASCII_WHITESPACE) + text.slice(at)
        break
      case 1: // MIME's line breaks, or the base64 tool's
        text = text.replace(
          new RegExp(`(.{${g.pick([64, 76])}})`, 'g'),
          `$1${g.pick(['\n', '\r\n'])}`,
        )
        break
      case 2: // padding dropped
        text = text.replace(/=+$/, '')
        break
      case 3: // padding added
        text += '='.repeat(1 + g.int(3))
        break
      case 4: // a character replaced or inserted
        text = text.slice(0, at) + g.pick(STRAYS) + text.slice(at + g.int(2))
        break
      case 5: // a character lost
        text = text.slice(0, at) + text.slice(at + 1)
        break
      case 6: // whitespace around the whole
        text = g.pick(ASCII_WHITESPACE) + text + g.pick(ASCII_WHITESPACE)
        break
      case 7: // whitespace between the padding signs
        text = text.replace(/==$/, `=${g.pick(ASCII_WHITESPACE)}=`)
        break
      default: // two texts run together
        text += file.slice(0, g.int(4)).toBase64()
    }
  }
  return text
}

describe('base64Content', () => {
  afterEach(() => {
    for (const spy of spies.splice(0)) spy.mockRestore()
  })
  const spies: { mockRestore(): void }[] = []

  test('takes and refuses what the pattern and the groups of four did, with the same words, on 20,000 random texts', () => {
    const seed = Date.now() % 1_000_000
    const g = generator(seed)
    const differ: string[] = []
    for (let i = 0; i < 20_000 && differ.length < 5; i++) {
      const text = nearBase64(g, g.int(i % 10 === 0 ? 40 : 12))
      const want = patternVerdict(text)
      const got = base64Content(text)
      if (!Bun.deepEquals(got, want, true))
        differ.push(`${JSON.stringify(text)}: ${JSON.stringify(got)}, was ${JSON.stringify(want)}`)
    }
    expect({ seed, differ }).toEqual({ seed, differ: [] })
  })

  test('alike past the decoding buffer: a stray or whitespace at or beside a 48 KB boundary', () => {
    const seed = Date.now() % 1_000_000
    const g = generator(seed)
    const step = 65_536 // the characters of 48 KB
    const differ: string[] = []
    for (let i = 0; i < 120 && differ.length < 5; i++) {
      let text = nearBase64(g, 49_152 * (1 + g.int(2)) + g.int(6) - 3)
      if (g.next() < 0.7) {
        const at = step * (1 + g.int(2)) + g.int(5) - 2
        const put = g.pick([...ASCII_WHITESPACE, ...STRAYS, '=='])
        text = text.slice(0, at) + put + text.slice(at + g.int(2))
      }
      const want = patternVerdict(text)
      const got = base64Content(text)
      if (!Bun.deepEquals(got, want, true))
        differ.push(
          `text ${i} of ${text.length}: ${JSON.stringify(got).slice(0, 80)}, was ${JSON.stringify(want).slice(0, 80)}`,
        )
    }
    expect({ seed, differ }).toEqual({ seed, differ: [] })
  })

  test('chosen texts: padding, whitespace between its signs, a vertical tab, URL-safe letters, overflow bits', () => {
    const texts = [
      '',
      'QQ==',
      'QR==', // overflow bits set: taken, as the pattern took them
      'QUI=',
      'QUJD',
      'QQ\r\n==',
      ' Q Q== ',
      'QUJD\tREVG\n',
      'QUJD\vREVG', // a vertical tab is ASCII whitespace to the pattern, not to the decoding
      'QQ= =',
      'QQ=\n=',
      'QQ=',
      'QQ',
      'QUJ',
      'Q',
      'Q===',
      'QQ==QUJD',
      'QUJD====',
      '=',
      '==',
      '    ',
      'ab-_',
      'QUJD\u00a0REVG',
      'QUJD\u2028',
    ]
    expect(texts.map(base64Content)).toEqual(texts.map(patternVerdict))
    expect(texts.map(base64Content).slice(0, 9)).toEqual([
      { content: '' },
      { content: 'QQ==' },
      { content: 'QR==' },
      { content: 'QUI=' },
      { content: 'QUJD' },
      { content: 'QQ==' },
      { content: 'QQ==' },
      { content: 'QUJDREVG' },
      { content: 'QUJDREVG' },
    ])
  })

  test('a 2 MB file in one line is decoded at each check, never matched nor copied; one in lines stripped once, never matched', () => {
    const bare = new Uint8Array(2_000_000).map((_, i) => (i * 2_654_435_761) >>> 24).toBase64()
    const lines = bare.replace(/(.{76})/g, '$1\r\n')
    const matched = spyOn(RegExp.prototype, 'test')
    const replaced = spyOn(String.prototype, 'replace')
    spies.push(matched, replaced)
    // The pattern's matches and the strips of the file itself, as a read or a send checks it.
    const checked = (contentBase64: string) => {
      matched.mockClear()
      replaced.mockClear()
      const [sent] = sendableAttachments([{ filename: 'scan.pdf', contentBase64 }])
      return {
        sent: sent?.contentBase64 === bare,
        matched: matched.mock.calls.filter(([text]) => text === contentBase64).length,
        stripped: replaced.mock.contexts.filter((text) => `${text}` === contentBase64).length,
      }
    }
    expect([checked(bare), checked(lines)]).toEqual([
      { sent: true, matched: 0, stripped: 0 },
      { sent: true, matched: 0, stripped: 1 },
    ])
  })
})
