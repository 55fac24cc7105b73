// A database URL's percent-encoding, part by part: a % with no two hex digits, or escapes that decode to no UTF-8 text, named by its part and place, never its text.

// A % that starts no escape: libpq refuses the URL ("invalid percent-encoded token"); node-postgres's
// parser keeps it as written and, finding one anywhere, re-encodes the whole URL, so that a
// password's %2F elsewhere reached the server as the three characters "%2F".
const MALFORMED = /%(?![0-9a-f]{2})/i
// A run of escapes: the bytes of one UTF-8 character are written side by side.
const ESCAPES = /(?:%[0-9a-f]{2})+/gi

/**
 * The parts of a postgres URL the driver percent-decodes, each with the words that name it, as the
 * URL parser splits a URL of no special scheme: the authority ends at the first / or ?, its user
 * information at its last @, the user name at the first : of it. (A # is refused before this.)
 */
function decodedParts(value: string): [string, string][] {
  const rest = value.replace(/^[a-z]+:\/\//i, '')
  const q = rest.indexOf('?')
  const beforeQuery = q < 0 ? rest : rest.slice(0, q)
  const slash = beforeQuery.indexOf('/')
  const authority = slash < 0 ? beforeQuery : beforeQuery.slice(0, slash)
  const at = authority.lastIndexOf('@')
  const userinfo = at < 0 ? '' : authority.slice(0, at)
  const colon = userinfo.indexOf(':')
  const parts: [string, string][] = [
    ['user name', colon < 0 ? userinfo : userinfo.slice(0, colon)],
    ['password', colon < 0 ? '' : userinfo.slice(colon + 1)],
    ['host', authority.slice(at + 1)],
    ['database name', slash < 0 ? '' : beforeQuery.slice(slash + 1)],
  ]
  const pairs = q < 0 ? [] : rest.slice(q + 1).split('&')
  pairs.forEach((pair, i) => {
    const eq = pair.indexOf('=')
    const key = eq < 0 ? pair : pair.slice(0, eq)
    // A parameter is named by its name when that is a plain word (sslmode, options), never quoted
    // otherwise: a misplaced password may be anywhere.
    const named = /^[a-z_]{1,40}$/i.test(key) ? `${key} parameter` : `parameter ${i + 1}`
    parts.push([`${named}'s name`, key])
    if (eq >= 0) parts.push([named, pair.slice(eq + 1)])
  })
  return parts
}

/**
 * What is wrong with the percent-encoding of `value` (a postgres:// URL), or null: the first part
 * holding a % that starts no escape, else the first whose escapes decode to no UTF-8 text (the
 * driver's decodeURIComponent throws on them, or its query parser writes U+FFFD), with where it is
 * in that part, in characters from 1. The part's text is never said: it may be a password.
 */
export function percentEncodingProblem(value: string): string | null {
  const parts = decodedParts(value)
  for (const [part, text] of parts) {
    const at = text.search(MALFORMED)
    if (at >= 0) {
      return `its ${part} holds a % not followed by two hexadecimal digits, at character ${characterAt(text, at)} of the ${part}: the driver would use it as written (libpq refuses it); write a % itself as %25, and @ : / ? # as %40 %3A %2F %3F %23`
    }
  }
  for (const [part, text] of parts) {
    for (const run of text.matchAll(ESCAPES)) {
      try {
        decodeURIComponent(run[0])
      } catch {
        return `its ${part}'s percent-encoding at character ${characterAt(text, run.index)} of the ${part} decodes to no UTF-8 text (the driver cannot read it): percent-encode the ${part}'s UTF-8 bytes, as encodeURIComponent does`
      }
    }
  }
  return null
}

// Where UTF-16 index `i` of `text` is, in characters from 1, as the other lines count them (an
// emoji is one, though two UTF-16 units: invisible-character.ts).
const characterAt = (text: string, i: number) => [...text.slice(0, i)].length + 1
