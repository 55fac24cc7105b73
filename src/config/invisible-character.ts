// A character no one sees in a variable's value (a control or format character: a zero-width space, a word joiner, a soft hyphen), named with where it is.
import { byteOrderMarkProblem } from './pem-file.ts'

// Control (Cc) and format (Cf) characters: what a copy from a web page, a chat or a document leaves.
const INVISIBLE = /[\p{Cc}\p{Cf}]/u
// Variables whose values span lines (a PEM, a JSON list, a list of addresses): tab, CR, LF taken.
const TAKES_LINE_BREAKS = new Set([
  'GRAPH_CERTIFICATE',
  'GRAPH_PRIVATE_KEY',
  'MAILER_DATABASES',
  'MAIL_FROM_ALLOWED',
])
// Variables holding a PEM's text: a file's contents, "$(cat <file>)".
const PEM_VALUES = new Set(['GRAPH_CERTIFICATE', 'GRAPH_PRIVATE_KEY'])
const LABELS: Record<number, string> = {
  9: 'a tab',
  10: 'a line break',
  13: 'a carriage return',
  173: 'soft hyphen',
  8203: 'zero-width space',
  8204: 'zero-width non-joiner',
  8205: 'zero-width joiner',
  8206: 'left-to-right mark',
  8207: 'right-to-left mark',
  8288: 'word joiner',
  65279: 'byte order mark',
}
const PICTOGRAPH = /\p{Extended_Pictographic}/u
const FORMAT = /\p{Cf}/u
// MAIL_FROM's `<address>` as splitNamedAddress reads it (the last such group): what is before it is the name.
const ADDRESS_LAST = /<[^<>]+>$/

/**
 * What is wrong with `value` (trimmed, as it is read) holding such a character, naming the first by
 * code point and position (in characters from 1), never the value (it may be a secret); else null.
 * A zero-width joiner between two pictographs is part of an emoji. MAIL_FROM's display name takes
 * any format character: it is shown, never used to reach anything, and scripts and emoji are
 * written with them (a Persian non-joiner, a Devanagari joiner, a skin tone's joiner, a flag's tags).
 */
export function invisibleCharacterProblem(name: string, value: string): string | null {
  const trimmed = value.trim()
  const chars = [...trimmed]
  const address = name === 'MAIL_FROM' ? ADDRESS_LAST.exec(trimmed) : null
  const nameLength = address ? [...trimmed.slice(0, address.index)].length : 0
  const at = chars.findIndex((c, i) => {
    if (!INVISIBLE.test(c)) return false
    if (i < nameLength && FORMAT.test(c)) return false
    if (TAKES_LINE_BREAKS.has(name) && (c === '\t' || c === '\n' || c === '\r')) return false
    const emoji = PICTOGRAPH.test(chars[i - 1] ?? '') && PICTOGRAPH.test(chars[i + 1] ?? '')
    return !(c === '\u200d' && emoji)
  })
  if (at < 0) return null
  const code = chars[at]!.codePointAt(0)!
  // A PEM's mark inside (its leading one is a blank, trimmed): a file saved "UTF-8 with BOM"
  // joined after another, not a copy from a page; named as the files' checks name it.
  if (code === 0xfeff && PEM_VALUES.has(name)) {
    const line = chars.slice(0, at).filter((c) => c === '\n').length + 1
    return `${name}: ${byteOrderMarkProblem(
      `at line ${line}`,
      'a file so saved was joined after another ("$(cat a.pem b.pem)"), its mark kept',
      "save each file without it (sed -i 's/\\xEF\\xBB\\xBF//g' <file>) and set the value again",
    )}`
  }
  const hex = code.toString(16).toUpperCase().padStart(4, '0')
  const label = LABELS[code] ?? (code < 0xa0 ? 'a control character' : 'a format character')
  return `${name}: holds an invisible character, U+${hex} (${label}), at character ${at + 1} of ${chars.length}: a copy from a web page, a chat or a document leaves them; ${ADVICE[name] ?? 'type that part again'}`
}

// A client secret is random characters Entra shows once: no one types part of it again.
const ADVICE: Record<string, string> = {
  GRAPH_CLIENT_SECRET:
    "copy the secret's Value again from where it was saved (Entra shows it once, when it is added: if it is lost, add a new client secret under the app registration's Certificates & secrets)",
}
