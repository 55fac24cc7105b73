// Reads a composed .eml back into its MIME parts, apart from the composer that wrote it: headers unfolded, types parsed, bodies decoded.
import { parseHeaderValue } from 'nodemailer/lib/mime-funcs'

/** One MIME part (the message itself at the root), as a mail reader would see it. */
export interface EmlPart {
  /** Each header's lines unfolded (RFC 5322 2.2.3), by lower-case name, in the order written. */
  headers: Map<string, string[]>
  /** The Content-Type's type/subtype in lower case; `text/plain` when absent (RFC 2045 5.2). */
  type: string
  /** The Content-Type's parameters, names in lower case (`charset`, `boundary`, `name`). */
  params: Record<string, string>
  /** `attachment`, `inline`, or null without a Content-Disposition. */
  disposition: string | null
  /** The disposition's filename (else the type's name), RFC 2231 and 2047 decoded, or null. */
  filename: string | null
  /** The Content-Transfer-Encoding in lower case, `7bit` when absent (RFC 2045 6.1). */
  transferEncoding: string
  /** The body's bytes, transfer encoding undone; of a multipart, what precedes its first part. */
  body: Buffer
  /** A multipart's parts, in order; [] for any other type. */
  parts: EmlPart[]
}

/** The whole message; throws where it is no MIME a reader could take apart. */
export function readEml(eml: Buffer | string): EmlPart {
  // latin1 maps each byte to one code unit and back: a body is split as text, its bytes kept.
  return readPart(
    typeof eml === 'string' ? Buffer.from(eml, 'utf8').toString('latin1') : eml.toString('latin1'),
  )
}

/** The parts that hold content (no multipart), depth first, as a reader lists them. */
export function leafParts(part: EmlPart): EmlPart[] {
  return part.parts.length === 0 && !part.type.startsWith('multipart/')
    ? [part]
    : part.parts.flatMap(leafParts)
}

/** A header's first value, or undefined when the part has none. */
export const header = (part: EmlPart, name: string): string | undefined =>
  part.headers.get(name.toLowerCase())?.[0]

function readPart(text: string): EmlPart {
  // A part with no header at all starts with its blank line.
  const end = text.startsWith('\r\n') ? 0 : text.indexOf('\r\n\r\n')
  if (end < 0) throw new Error('no blank line ends the header')
  const headers = readHeaders(text.slice(0, end))
  const content = text.slice(end === 0 ? 2 : end + 4)
  const contentType = parseHeaderValue(headers.get('content-type')?.[0] ?? 'text/plain')
  const type = contentType.value.toLowerCase()
  const dispositionValue = headers.get('content-disposition')?.[0]
  const disposition = dispositionValue ? parseHeaderValue(dispositionValue) : null
  const transferEncoding = (headers.get('content-transfer-encoding')?.[0] ?? '7bit').toLowerCase()
  const rawName = disposition?.params.filename ?? contentType.params.name
  const part: EmlPart = {
    headers,
    type,
    params: contentType.params,
    disposition: disposition ? disposition.value.toLowerCase() : null,
    filename: rawName === undefined ? null : decodeWords(rawName),
    transferEncoding,
    body: Buffer.alloc(0),
    parts: [],
  }
  if (!type.startsWith('multipart/')) {
    part.body = decodeBody(content, transferEncoding)
    return part
  }
  const boundary = contentType.params.boundary
  if (!boundary) throw new Error(`${type} without a boundary`)
  // RFC 2046 5.1.1: a delimiter is CRLF "--" boundary at a line's start; the CRLF before it
  // belongs to the delimiter, not to the part it ends.
  const pieces = `\r\n${content}`.split(`\r\n--${boundary}`)
  part.body = Buffer.from(pieces[0]!.replace(/^\r\n/, ''), 'latin1')
  const closed = pieces.findIndex((p, i) => i > 0 && p.startsWith('--'))
  if (closed < 0) throw new Error(`${type} whose closing delimiter is missing`)
  for (const piece of pieces.slice(1, closed)) {
    // The rest of the delimiter line (transport padding) ends at its CRLF.
    const lineEnd = piece.indexOf('\r\n')
    if (lineEnd < 0 || piece.slice(0, lineEnd).trim() !== '')
      throw new Error('a broken delimiter line')
    part.parts.push(readPart(piece.slice(lineEnd + 2)))
  }
  return part
}

function readHeaders(block: string): Map<string, string[]> {
  const headers = new Map<string, string[]>()
  if (block === '') return headers
  for (const line of block.replace(/\r\n(?=[ \t])/g, '').split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new Error(`a header line without a name: ${JSON.stringify(line)}`)
    const name = line.slice(0, colon).toLowerCase()
    const value = line.slice(colon + 1).replace(/^[ \t]+/, '')
    headers.set(name, [...(headers.get(name) ?? []), value])
  }
  return headers
}

function decodeBody(text: string, transferEncoding: string): Buffer {
  if (transferEncoding === 'base64') return Buffer.from(text.replace(/[\r\n\t ]/g, ''), 'base64')
  if (transferEncoding === 'quoted-printable') {
    // RFC 2045 6.7: "=" CRLF is a soft line break; "=" and two hex digits is that byte.
    const joined = text.replace(/=\r\n/g, '')
    const bytes: number[] = []
    for (let i = 0; i < joined.length; i++) {
      if (joined[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(joined.slice(i + 1, i + 3))) {
        bytes.push(Number.parseInt(joined.slice(i + 1, i + 3), 16))
        i += 2
      } else bytes.push(joined.charCodeAt(i))
    }
    return Buffer.from(bytes)
  }
  return Buffer.from(text, 'latin1')
}

/** RFC 2047 encoded words in a header value or parameter, adjacent ones joined (6.2). */
export function decodeWords(value: string): string {
  return value
    .replace(/(\?=)[ \t]+(?==\?)/g, '$1')
    .replace(
      /=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g,
      (_, charset: string, kind: string, text: string) => {
        const bytes =
          kind.toUpperCase() === 'B'
            ? Buffer.from(text, 'base64')
            : decodeBody(text.replace(/_/g, ' '), 'quoted-printable')
        return new TextDecoder(charset as ConstructorParameters<typeof TextDecoder>[0]).decode(
          bytes,
        )
      },
    )
}
